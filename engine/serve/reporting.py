"""What a running job tells its watchers: trainer callbacks → rate-limited progress, preview and status
events, and the result event of a finished variant. Everything here only appends to the job's event log
(PNG encoding and disk writes happen on the event writer's thread)."""

from __future__ import annotations

import math
import time
from typing import Any

from engine.serve.jobs import JobRecord, JobStore
from engine.serve.models import PreviewData, ProgressData, ResultData
from engine.train import Callbacks, Progress
from engine.variants import Variant

PROGRESS_INTERVAL = 0.1
"""Seconds between progress events of a job (the last step of a variant is always sent)."""
PREVIEW_INTERVAL = 0.4
"""Seconds between preview events of a job: a few a second at most (the last one is always sent)."""


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

    def __init__(self, store: JobStore, job: JobRecord, variant: Variant, n_variants: int):
        self.store, self.job, self.v, self.n = store, job, variant, n_variants
        self._last_progress = -math.inf
        self._last_preview = -math.inf

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
        now = time.monotonic()
        if p.step < p.total and now - self._last_progress < PROGRESS_INTERVAL:
            return
        self._last_progress = now
        later = (self.n - self.v.index - 1) * p.total / max(p.its, 1e-9)
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
        now = time.monotonic()
        if step < self.job.config.train.steps and now - self._last_preview < PREVIEW_INTERVAL:
            return
        self._last_preview = now
        data = PreviewData(variant=self.v.index, step=step, size=int(img.shape[0]), png="").model_dump()
        del data["png"]  # filled in by the event writer thread (PNG encoding stays off this thread)
        path = self.v.run_dir / "previews" / f"step_{step:05d}.png"
        self.job.events.append("preview", data, image=img, image_path=path)
