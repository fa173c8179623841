"""The worker side of a distributed runner: one variant at a time from a plain :class:`VariantTask`, and what
the run reports kept in an outbox that the server drains.

There is no Ray in this module — :class:`engine.serve.ray_cluster.WorkerActor` makes it an actor — so
the worker holds nothing but the engine: it loads priors (kept between jobs, like a thread worker's), runs
:func:`engine.variants.run_variant` in a scratch folder of its own machine, and returns every file the
server's job store needs. Nothing here assumes the server's data folder is reachable: checkpoints and
results travel as bytes (docs/RAY.md says why).

Messages in the outbox, in the order the run produced them:

* ``("start", step)`` — training is about to start (step > 0: it resumed from the task's checkpoint);
* ``("progress", {Progress fields})`` and ``("preview", step, uint8 [H, W, 3])`` — rate-limited exactly
  as the thread runner's events (:class:`engine.serve.reporting.Throttle`);
* ``("checkpoint", step, bytes)`` — every checkpoint the trainer writes (periodic, on cancel, at the
  end); only the newest one waits in the outbox, so a slow server never piles them up.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import engine
from engine import atomic
from engine.config import RunConfig
from engine.device import describe, resolve_device
from engine.serve.reporting import PREVIEW_INTERVAL, PROGRESS_INTERVAL, Throttle
from engine.serve.runner import PriorCache
from engine.train import Callbacks, Progress, TrainingDiverged
from engine.variants import Variant, run_variant

log = logging.getLogger(__name__)


@dataclass
class VariantTask:
    """One variant of one job, as the server sends it to a worker."""

    task_id: str
    """Unique per attempt: a cancel names it, so a late cancel never stops the next task."""
    job_id: str
    config: dict[str, Any]
    """The variant's resolved RunConfig (``RunConfig.to_dict``), its seed set."""
    index: int
    """Variant index within the job."""
    seed: int
    checkpoint: bytes | None = None
    """The newest checkpoint the server holds for this variant: the run resumes from it."""


@dataclass
class TaskOutcome:
    """How a task ended, with everything the server stores for it."""

    status: Literal["done", "cancelled", "failed"]
    step: int
    """The step training reached (a cancelled run's checkpoint holds this step)."""
    record: dict[str, Any] = field(default_factory=dict)
    """run.json's content (done only); its paths are the worker's and the server rewrites them."""
    files: dict[str, bytes] = field(default_factory=dict)
    """The exported files by kind (glb, texture, turntable …; done only)."""
    message: str = ""
    """Why it failed, in words for the user (failed only)."""


class EngineWorker:
    """Runs variants on one device. Its methods are called concurrently (a threaded actor): ``run`` on one
    thread, ``drain``/``cancel``/``info`` on the others; one ``run`` at a time."""

    def __init__(
        self,
        device: str = "cpu",
        torch_threads: int | None = None,
        scratch: str | None = None,
    ):
        if torch_threads:
            # Ray sets OMP_NUM_THREADS from the actor's CPUs; say it to torch explicitly so a thread-runner
            # run with the same count gives bit-identical results.
            torch.set_num_threads(torch_threads)
        self.device = resolve_device(device)
        self.priors = PriorCache(max_entries=2)
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="text3d-worker-"))
        self._lock = threading.Lock()
        self._outbox: list[tuple] = []
        self._task: str | None = None
        self._job: str | None = None
        self._cancel = threading.Event()
        self._cancelled: set[str] = set()
        """Cancels that arrived before their task started (calls on a threaded actor may overtake)."""

    def preload(self, spec: str) -> None:
        """Load the prior ``spec`` in the background (the server asks for its jobs' default prior as soon
        as it has started the actor): ``info()`` and the first job's start are answered meanwhile; a job
        that needs this prior waits for the load instead of starting its own."""
        self.priors.preload(spec, self.device)

    def info(self) -> dict[str, Any]:
        """What the server shows and checks: engine version, device, where this worker runs, its job."""
        return {
            "engine": engine.__version__,
            "torch": torch.__version__,
            "device": describe(self.device),
            "node": socket.gethostname(),
            "pid": os.getpid(),
            "torch_threads": torch.get_num_threads(),
            "job": self._job,
        }

    def drain(self) -> list[tuple]:
        """Everything reported since the last drain, oldest first."""
        with self._lock:
            out, self._outbox = self._outbox, []
        return out

    def cancel(self, task_id: str) -> None:
        """Stop the task (it checkpoints first, within one training step) or, if it has not started, skip it."""
        with self._lock:
            if self._task == task_id:
                self._cancel.set()
            else:
                self._cancelled.add(task_id)

    def run(self, task: VariantTask) -> TaskOutcome:
        with self._lock:
            if self._task is not None:
                raise RuntimeError(f"worker busy with task {self._task}; one task at a time")
            self._task, self._job = task.task_id, task.job_id
            self._outbox = []
            self._cancel.clear()
            if task.task_id in self._cancelled:
                self._cancelled.discard(task.task_id)
                self._cancel.set()
        work = self.scratch / task.job_id / f"variant_{task.index}"
        try:
            return self._run(task, work)
        except (TrainingDiverged, ValueError, FileNotFoundError) as e:
            return TaskOutcome("failed", 0, message=str(e))
        except Exception as e:  # a bug or an environment problem: the worker stays up for the next task
            log.exception("task %s failed", task.task_id)
            return TaskOutcome("failed", 0, message=f"{type(e).__name__}: {e}")
        finally:
            shutil.rmtree(work, ignore_errors=True)  # the server holds everything worth keeping
            with self._lock:
                self._task = self._job = None

    def _run(self, task: VariantTask, work: Path) -> TaskOutcome:
        cfg = RunConfig.from_dict(task.config)
        shutil.rmtree(work, ignore_errors=True)
        variant = Variant(task.index, task.seed, work / "run", work / "asset.glb")
        variant.run_dir.mkdir(parents=True)
        if task.checkpoint is not None:
            atomic.write_bytes(variant.checkpoint, task.checkpoint)
        prior, t_load = self.priors.get(cfg.prior, self.device)
        prior.vocabulary_check(cfg.prompt)
        outbox = _Outbox(self, cfg.train.steps)
        r = run_variant(
            cfg,
            prior,
            variant,
            outbox.callbacks(),
            self._cancel,
            resume=task.checkpoint is not None,
            prior_load_seconds=t_load,
            on_start=outbox.on_start,
        )
        if r.status == "cancelled":
            return TaskOutcome("cancelled", r.step)
        files = {kind: Path(p).read_bytes() for kind, p in r.record["export"]["paths"].items()}
        r.record["worker"] = {
            k: v for k, v in self.info().items() if k in ("node", "pid", "device", "torch_threads")
        }
        return TaskOutcome("done", r.step, r.record, files)

    def _put(self, message: tuple) -> None:
        with self._lock:
            if message[0] == "checkpoint":
                # Only the newest checkpoint matters: a resume starts from it.
                self._outbox = [m for m in self._outbox if m[0] != "checkpoint"]
            self._outbox.append(message)


class _Outbox:
    """The trainer callbacks of one task: rate-limited like VariantReporter, appended to the worker's outbox."""

    def __init__(self, worker: EngineWorker, steps: int):
        self.worker, self.steps = worker, steps
        self._progress_gate = Throttle(PROGRESS_INTERVAL)
        self._preview_gate = Throttle(PREVIEW_INTERVAL)

    def callbacks(self) -> Callbacks:
        return Callbacks(
            on_progress=self.on_progress, on_preview=self.on_preview, on_checkpoint=self.on_checkpoint
        )

    def on_start(self, step: int) -> None:
        self.worker._put(("start", step))

    def on_progress(self, p: Progress) -> None:
        if self._progress_gate(final=p.step >= p.total):
            self.worker._put(("progress", dataclasses.asdict(p)))

    def on_preview(self, step: int, img: np.ndarray) -> None:
        if self._preview_gate(final=step >= self.steps):
            self.worker._put(("preview", step, img))

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.worker._put(("checkpoint", step, path.read_bytes()))


__all__ = ["EngineWorker", "TaskOutcome", "VariantTask"]
