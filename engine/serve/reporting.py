"""What a running job tells its watchers: trainer callbacks → rate-limited progress, preview and status
events, and the result event of a finished variant. Everything here only appends to the job's event log
(PNG encoding and disk writes happen on the event writer's thread).

The thread runner attaches :meth:`VariantReporter.callbacks` to the trainer directly. The Ray runner
rate-limits in the actor with the same :class:`Throttle` (so only what will be shown crosses the network)
and hands what arrives to :meth:`VariantReporter.progress` / :meth:`VariantReporter.preview`, which append
without limiting again: the events are the same whichever runner produced them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from engine.serve.jobs import JobRecord, JobStore
from engine.serve.models import PreviewData, ProgressData, ResultData
from engine.train import Callbacks, Progress
from engine.variants import Variant

PROGRESS_INTERVAL = 0.1
"""Seconds between progress events of a job (the last step of a variant is always sent)."""
PREVIEW_INTERVAL = 0.4
"""Seconds between preview events of a job: a few a second at most (the last one is always sent)."""


class Throttle:
    """Lets one event through per ``interval`` seconds; a final one (the last step) always passes."""

    def __init__(self, interval: float):
        self.interval = interval
        self._last = -math.inf

    def __call__(self, final: bool = False) -> bool:
        now = time.monotonic()
        if not final and now - self._last < self.interval:
            return False
        self._last = now
        return True


def result_data(job: JobRecord, v: Variant, record: dict[str, Any]) -> dict[str, Any]:
    """The ``result`` event of a finished variant, from its run.json record."""
    base = f"/v1/jobs/{job.id}/result?variant={v.index}"
    has_turntable = "turntable" in record.get("export", {}).get("paths", {})
    return ResultData(
        variant=v.index,
        seed=v.seed,
        glb=base,
        texture=base + "&kind=texture",
        turntable=base + "&kind=turntable" if has_turntable else None,
        faces=record["mesh"]["faces"],
        vertices=record["mesh"]["vertices"],
        seconds=record["seconds"],
    ).model_dump()


class VariantReporter:
    """Trainer callbacks for one variant: rate-limited, and they only append to the event log."""

    def __init__(
        self,
        store: JobStore,
        job: JobRecord,
        variant: Variant,
        n_variants: int,
        variants_after: Callable[[], float] | None = None,
    ):
        self.store, self.job, self.v, self.n = store, job, variant, n_variants
        self._variants_after = variants_after
        """How many variant run times will pass after this one ends before the job is done (the ETA adds
        them): by default the variants after it, one after another."""
        self._progress_gate = Throttle(PROGRESS_INTERVAL)
        self._preview_gate = Throttle(PREVIEW_INTERVAL)

    def callbacks(self) -> Callbacks:
        return Callbacks(on_progress=self.on_progress, on_preview=self.on_preview)

    def on_start(self, step: int) -> None:
        v = self.v
        what = f"variant {v.index + 1}/{self.n} (seed {v.seed})"
        if step > 0:
            self.store.set_state(
                self.job,
                "running",
                f"{what} resumed from step {step}",
                variant=v.index,
                resumed_from_step=step,
            )
        else:
            self.store.set_state(self.job, "running", f"{what} started", variant=v.index)

    def on_progress(self, p: Progress) -> None:
        if self._progress_gate(final=p.step >= p.total):
            self.progress(p)

    def progress(self, p: Progress) -> None:
        """Append a progress event (no rate limit)."""
        after = self._variants_after() if self._variants_after else self.n - self.v.index - 1
        later = after * p.total / max(p.its, 1e-9)
        data = ProgressData(
            variant=self.v.index,
            variants=self.n,
            seed=self.v.seed,
            step=p.step,
            total=p.total,
            loss=p.loss if math.isfinite(p.loss) else None,
            its=p.its,
            eta_s=p.eta_s + later,
        ).model_dump()
        self.job.progress = data
        self.job.events.append("progress", data)

    def on_preview(self, step: int, img) -> None:
        if self._preview_gate(final=step >= self.job.config.train.steps):
            self.preview(step, img)

    def preview(self, step: int, img) -> None:
        """Append a preview event (no rate limit); the PNG is written under the variant's run folder."""
        data = PreviewData(variant=self.v.index, step=step, size=int(img.shape[0]), png="").model_dump()
        del data["png"]  # filled in by the event writer thread (PNG encoding stays off this thread)
        path = self.v.run_dir / "previews" / f"step_{step:05d}.png"
        self.job.events.append("preview", data, image=img, image_path=path)
