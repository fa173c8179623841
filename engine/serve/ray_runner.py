"""Jobs on a Ray cluster: ``python -m engine.serve --runner ray [--ray-address auto|HOST:PORT]``.

The server stays the only HTTP endpoint and the only job store; Ray runs the variants. Each worker is a
Ray actor (an :class:`engine.serve.worker.EngineWorker`, one per GPU with ``num_gpus=1``, or CPU actors
where the cluster has none) that keeps its loaded priors between jobs; :mod:`engine.serve.ray_cluster`
joins the cluster and starts them. One dispatch thread per actor takes the
next variant — the variants of the jobs already running first, in the order they started, then the head
of the queue — so the variants of one job fan out to every free worker, while queue order and the queue
limit are exactly the thread runner's.

While a variant runs, its dispatch thread drains the actor's outbox every :data:`POLL_S` seconds and hands
the messages to the same :class:`~engine.serve.reporting.VariantReporter` the thread runner uses, so the
event log and SSE streams cannot tell the runners apart. Checkpoints and results come back as bytes and
are written into the job's folder here (why bytes and not a shared folder: docs/RAY.md); a variant that
starts or resumes gets the newest checkpoint sent along. So a worker process or node that dies loses at
most the steps since its last checkpoint: the variant is queued again at the front and resumes on the
next free worker, and the lost actor is replaced by a fresh one, which Ray places wherever there is room.

This module and :mod:`engine.serve.ray_cluster` are the only ones that import Ray; they are imported only
when ``--runner ray`` is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from engine import atomic
from engine.export.pipeline import output_paths
from engine.serve.jobs import JobRecord, JobStore
from engine.serve.ray_cluster import RayCluster, RaySetupError, first_line, kill, wait_ready, where
from engine.serve.reporting import VariantReporter, result_data
from engine.serve.runner import LocalJobRunner, QueueFull, QueueViews
from engine.serve.worker import TaskOutcome, VariantTask
from engine.train import Progress

log = logging.getLogger(__name__)

POLL_S = 0.1
"""Seconds between drains of a running actor's outbox (progress reaches clients at most this late)."""
RETRY_S = (2.0, 30.0)
"""First and longest wait between attempts to replace a lost worker."""
LOST = (ActorDiedError, ActorUnavailableError, RayActorError)
"""What Ray raises when the actor's process or node is gone (the task may have been mid-way)."""


@dataclass
class _Slot:
    """One worker: its actor, the dispatch thread feeding it, and the task it runs."""

    index: int
    actor: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    up: bool = False
    task_id: str | None = None
    thread: threading.Thread | None = None


@dataclass
class _JobRun:
    """A job that has started: which variants wait, which run where, how they stopped."""

    job: JobRecord
    variants: list
    pending: deque[int] = field(default_factory=deque)
    running: dict[int, _Slot] = field(default_factory=dict)
    losses: dict[int, int] = field(default_factory=dict)
    checkpoint_step: dict[int, int] = field(default_factory=dict)
    """The step of the newest checkpoint of each variant in the job's folder."""
    stopped: dict[int, int] = field(default_factory=dict)
    """Cancelled/interrupted variants → the step their checkpoint holds."""
    announced: bool = False


class RayJobRunner(QueueViews):
    """:class:`~engine.serve.runner.JobRunner` on the actors of a :class:`RayCluster` that has been
    ``start()``-ed. ``connect()`` first (before the server listens: a bad set-up is an exit with a message),
    then ``attach()`` the app's store, then the app starts it."""

    def __init__(self, cluster: RayCluster, queue_size: int):
        self.cluster = cluster
        self.settings = cluster.settings
        self.queue_size = queue_size
        self.store: JobStore | None = None
        self._door: LocalJobRunner | None = None
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._running: dict[str, _JobRun] = {}
        """Started jobs in the order they started (dict order)."""
        self._slots: list[_Slot] = []
        self._shutting_down = False
        self._alive = 0
        self._stopped = threading.Event()
        self._stopping_signal: threading.Event | None = None

    # ------------------------------------------------------------------ set-up
    def connect(self) -> None:
        """Wait until the cluster's actors run; raises RaySetupError naming the problem and the fix."""
        ready = self.cluster.ready()
        self._slots = [_Slot(k, a, i, up=True) for k, (a, i) in enumerate(ready)]
        for slot in self._slots:
            log.info("ray worker %d: %s on %s (pid %s)", slot.index, slot.info["device"], *where(slot.info))

    def attach(self, store: JobStore, stopping: threading.Event | None = None) -> None:
        """Use the app's job store (and its stop signal: running jobs checkpoint as soon as a stop begins)."""
        self.store = store
        # The door is the thread runner's own check (only tokenizers, loaded here); it never runs a job.
        self._door = LocalJobRunner(store, [torch.device("cpu")], self.queue_size, workers=0)
        self._stopping_signal = stopping

    def describe(self) -> str:
        """One line for the server's start-up output."""
        return self.cluster.describe(len(self._slots))

    # ------------------------------------------------------------------ JobRunner interface
    def start(self, resume: list[JobRecord]) -> None:
        assert self.store is not None, "attach() the store first"
        for job in resume:
            note = (
                "the server stopped unexpectedly; re-queued, continues from its last checkpoint"
                if job.state == "running"
                else "re-queued after a server restart"
            )
            with self._cond:
                self._queue.append(job.id)
                pos = len(self._queue)
            self.store.set_state(job, "queued", note, queue_position=pos)
        with self._cond:
            self._alive = len(self._slots)
            if not self._slots and self._shutting_down:
                self._stopped.set()
        for slot in self._slots:
            slot.thread = threading.Thread(
                target=self._dispatch, args=(slot,), name=f"ray-dispatch-{slot.index}", daemon=True
            )
            slot.thread.start()
        if self._stopping_signal is not None:
            threading.Thread(target=self._watch_stopping, name="ray-stop-watch", daemon=True).start()

    def check(self, cfg) -> None:
        assert self._door is not None, "attach() the store first"
        self._door.check(cfg)

    def submit(self, job: JobRecord) -> int:
        assert self.store is not None
        with self._cond:
            if self._shutting_down:
                raise QueueFull("the server is shutting down; submit again after it restarts")
            if len(self._queue) >= self.queue_size:
                raise QueueFull(
                    f"the queue is full ({self.queue_size} jobs waiting); try again when a job has finished"
                )
            self._queue.append(job.id)
            pos = len(self._queue)
            self.store.set_state(job, "queued", f"queued at position {pos}", queue_position=pos)
            self._cond.notify_all()
        return pos

    def cancel(self, job: JobRecord) -> None:
        assert self.store is not None
        targets: list[tuple[Any, str]] = []
        with self._cond:
            queued = job.id in self._queue
            if queued:
                self._queue.remove(job.id)
            elif job.id in self._running:
                jr = self._running[job.id]
                job.cancel_reason = "cancel"
                job.cancel.set()
                # Straight to the actors, not at their next drain: the trainer stops before its next step.
                targets = [(s.actor, s.task_id) for s in jr.running.values() if s.task_id]
                self._settle_locked(jr)
                self._cond.notify_all()
        for actor, task_id in targets:
            actor.cancel.remote(task_id)
        if queued:
            job.cancel_reason = "cancel"
            self.store.set_state(job, "cancelled", "cancelled before it started")

    def devices(self) -> list[str]:
        if self._slots:
            return [s.info.get("device", "?") for s in self._slots]
        plan = self.cluster.plan
        return [plan.describe.split()[0] if plan else "CPU"]

    def workers(self) -> int:
        return len(self._slots)

    def begin_shutdown(self) -> None:
        targets: list[tuple[Any, str]] = []
        with self._cond:
            if self._shutting_down:
                return
            self._shutting_down = True
            for jr in list(self._running.values()):
                jr.job.cancel_reason = jr.job.cancel_reason or "shutdown"
                jr.job.cancel.set()
                targets += [(s.actor, s.task_id) for s in jr.running.values() if s.task_id]
                self._settle_locked(jr)
            self._cond.notify_all()
            if self._alive == 0:
                self._stopped.set()
        for actor, task_id in targets:
            actor.cancel.remote(task_id)

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for s in self._slots:
            if s.thread is not None:
                s.thread.join(max(0.0, end - time.monotonic()))
        self.close()

    def stopped(self) -> bool:
        return self._stopped.is_set()

    def close(self) -> None:
        """Stop the actors, and the local Ray if this server started it."""
        for s in self._slots:
            kill(s.actor)
        self.cluster.close()

    # ------------------------------------------------------------------ dispatch
    def _watch_stopping(self) -> None:
        assert self._stopping_signal is not None
        self._stopping_signal.wait()
        self.begin_shutdown()

    def _dispatch(self, slot: _Slot) -> None:
        try:
            while True:
                picked = self._next(slot)
                if picked is None:
                    return
                jr, index = picked
                try:
                    self._execute(slot, jr, index)
                except Exception as e:  # a bug here must not take the worker's thread down with it
                    log.exception("dispatch of job %s variant %d failed", jr.job.id, index)
                    self._finish(jr, index, TaskOutcome("failed", 0, message=f"{type(e).__name__}: {e}"))
        finally:
            with self._cond:
                self._alive -= 1
                if self._alive == 0 and self._shutting_down:
                    self._stopped.set()

    def _next(self, slot: _Slot) -> tuple[_JobRun, int] | None:
        """Block until this slot's worker is up and a variant waits; None once shutting down."""
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                if slot.up:
                    picked = self._pick_locked()
                    if picked is not None:
                        jr, index = picked
                        jr.running[index] = slot
                        return picked
                self._cond.wait()

    def _pick_locked(self) -> tuple[_JobRun, int] | None:
        for jr in self._running.values():
            if jr.pending and not jr.job.cancel.is_set() and not jr.job.final:
                return jr, jr.pending.popleft()
        while self._queue:
            job = self.store.get(self._queue.popleft()) if self.store else None
            if job is None:
                continue
            jr = self._admit_locked(job)
            if jr is not None:
                return jr, jr.pending.popleft()
        return None

    def _admit_locked(self, job: JobRecord) -> _JobRun | None:
        """Start a job from the queue: its unfinished variants wait; the finished ones (before a restart)
        are reported if their report was lost. None when nothing is left to run."""
        assert self.store is not None
        jr = _JobRun(job, job.variants())
        for v in jr.variants:
            if v.done:
                if v.index not in job.results:
                    self.store.add_result(job, result_data(job, v, json.loads(v.record_path.read_text())))
            else:
                jr.pending.append(v.index)
        if not jr.pending:
            n = len(jr.variants)
            self.store.set_state(job, "done", f"finished {n} asset{'s' if n > 1 else ''}")
            return None
        self._running[job.id] = jr
        return jr

    def _execute(self, slot: _Slot, jr: _JobRun, index: int) -> None:
        assert self.store is not None
        job, v = jr.job, jr.variants[index]
        if not jr.announced:
            jr.announced = True
            self.store.set_state(
                job, "running", f"loading the prior on {slot.info.get('device', 'a worker')}"
            )
        task = VariantTask(
            task_id=uuid.uuid4().hex,
            job_id=job.id,
            config=job.plan.config_for(v).to_dict(),
            index=index,
            seed=v.seed,
            checkpoint=v.checkpoint.read_bytes() if v.checkpoint.exists() else None,
        )
        rep = VariantReporter(
            self.store, job, v, len(jr.variants), variants_after=lambda: self._rounds_after(jr)
        )
        slot.task_id = task.task_id
        try:
            ref = slot.actor.run.remote(task)
            cancel_sent = False
            while True:
                ready, _ = ray.wait([ref], timeout=POLL_S)
                if job.cancel.is_set() and not cancel_sent:
                    slot.actor.cancel.remote(task.task_id)
                    cancel_sent = True
                self._deliver(jr, index, rep, ray.get(slot.actor.drain.remote()))
                if ready:
                    break
            outcome: TaskOutcome = ray.get(ref)
        except LOST as e:
            slot.task_id = None
            self._lost(slot, jr, index, e)
            return
        except ray.exceptions.RayError as e:  # e.g. the task's arguments could not be unpickled there
            outcome = TaskOutcome("failed", 0, message=first_line(e))
        finally:
            slot.task_id = None
        self._finish(jr, index, outcome)

    def _rounds_after(self, jr: _JobRun) -> float:
        """Variant run times after the current one: the waiting variants share the workers."""
        with self._cond:
            return math.ceil(len(jr.pending) / max(1, sum(s.up for s in self._slots)))

    def _deliver(self, jr: _JobRun, index: int, rep: VariantReporter, messages: list[tuple]) -> None:
        v = jr.variants[index]
        for m in messages:
            kind = m[0]
            if kind == "start":
                rep.on_start(m[1])
            elif kind == "progress":
                rep.progress(Progress(**m[1]))
            elif kind == "preview":
                rep.preview(m[1], m[2])
            elif kind == "checkpoint":
                v.run_dir.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(v.checkpoint, m[2])
                jr.checkpoint_step[index] = m[1]

    def _finish(self, jr: _JobRun, index: int, outcome: TaskOutcome) -> None:
        assert self.store is not None
        job, v = jr.job, jr.variants[index]
        targets: list[tuple[Any, str]] = []
        if outcome.status == "done" and not job.final:
            self._store_result(job, v, outcome)
        elif outcome.status == "cancelled":
            jr.stopped[index] = outcome.step
            if job.progress is not None and job.progress.get("variant") == index:
                # Progress events are rate-limited: the last one may be a few steps behind the checkpoint.
                job.progress = {**job.progress, "step": outcome.step}
        elif outcome.status == "failed" and not job.final:
            self.store.fail(job, outcome.message)
            with self._cond:  # the job has failed: its other variants stop (their checkpoints stay)
                targets = [(s.actor, s.task_id) for i, s in jr.running.items() if i != index and s.task_id]
        with self._cond:
            jr.running.pop(index, None)
            self._settle_locked(jr)
            self._cond.notify_all()
        for actor, task_id in targets:
            actor.cancel.remote(task_id)

    def _store_result(self, job: JobRecord, v, outcome: TaskOutcome) -> None:
        """Write the variant's files into the job's folder; run.json last (its presence means done)."""
        assert self.store is not None
        record = outcome.record
        paths = output_paths(v.asset, "obj" in outcome.files, "turntable" in outcome.files)
        atomic.write_all({paths[kind]: data for kind, data in outcome.files.items()})
        record["asset"] = str(v.asset)
        record["export"]["paths"] = {kind: str(paths[kind]) for kind in outcome.files}
        v.run_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_json(v.record_path, record, indent=2)
        self.store.add_result(job, result_data(job, v, record))

    def _settle_locked(self, jr: _JobRun) -> None:
        """Once no variant of the job runs: its final state, if it has one now."""
        assert self.store is not None
        job = jr.job
        if jr.running:
            return
        n = len(jr.variants)
        if job.final:
            pass  # failed: already said
        elif len(job.results) == n:
            self.store.set_state(job, "done", f"finished {n} asset{'s' if n > 1 else ''}")
        elif job.cancel.is_set():
            for i in jr.pending:  # never restarted after a loss: their checkpoint is where they stopped
                if i in jr.checkpoint_step:
                    jr.stopped.setdefault(i, jr.checkpoint_step[i])
            stopped = {}
            if jr.stopped:
                i = min(jr.stopped)
                stopped = {"variant": i, "checkpoint_step": jr.stopped[i]}
            if job.cancel_reason == "shutdown":
                self.store.set_state(
                    job,
                    "interrupted",
                    "the server is stopping; the job continues from its checkpoint on restart",
                    **stopped,
                )
            else:
                self.store.set_state(job, "cancelled", "cancelled", **stopped)
        else:
            return  # variants still wait for a worker
        self._running.pop(job.id, None)

    # ------------------------------------------------------------------ faults
    def _lost(self, slot: _Slot, jr: _JobRun, index: int, err: BaseException) -> None:
        """The actor died mid-task: queue the variant again (front) and replace the actor."""
        assert self.store is not None
        job, v = jr.job, jr.variants[index]
        why = first_line(err)
        log.warning("worker %d died running job %s variant %d: %s", slot.index, job.id, index, why)
        step = jr.checkpoint_step.get(index, 0)
        fail = False
        with self._cond:
            slot.up = False
            jr.running.pop(index, None)
            jr.losses[index] = jr.losses.get(index, 0) + 1
            if job.cancel.is_set() or job.final:
                jr.stopped.setdefault(index, step)
            elif jr.losses[index] >= self.settings.max_worker_losses:
                fail = True
            else:
                jr.pending.appendleft(index)
            requeued = not fail and not job.cancel.is_set() and not job.final
        n = len(jr.variants)
        what = f"variant {index + 1}/{n} (seed {v.seed})"
        if fail:
            self.store.fail(
                job,
                f"{what} lost its worker {jr.losses[index]} times (last: {why}); its checkpoint (step {step}) "
                "is kept: look at the Ray logs of the node, then submit the job again",
            )
        elif requeued:
            self.store.set_state(
                job,
                "running",
                f"{what} lost its worker ({why}); re-queued, continues from step {step}",
                variant=index,
                checkpoint_step=step,
            )
        with self._cond:
            self._settle_locked(jr)
            self._cond.notify_all()
        self._replace(slot)

    def _replace(self, slot: _Slot) -> None:
        """A fresh actor for a lost one, retried with back-off while the cluster has no room for it; jobs
        wait in the queue meanwhile (and run on the other workers)."""
        kill(slot.actor)
        delay = RETRY_S[0]
        while True:
            with self._cond:
                if self._shutting_down:
                    return
            actor = None
            try:
                actor = self.cluster.spawn(slot.index)
                (info,) = wait_ready([actor], self.settings.start_timeout, self.cluster.plan)
            except RaySetupError as e:
                kill(actor)  # its name is the next try's
                log.error("worker %d cannot be replaced: %s (retrying in %.0f s)", slot.index, e, delay)
                with self._cond:
                    self._cond.wait(delay)
                delay = min(delay * 2, RETRY_S[1])
                continue
            with self._cond:
                slot.actor, slot.info, slot.up = actor, info, True
                self._cond.notify_all()
            log.info("worker %d replaced: %s on %s (pid %s)", slot.index, info["device"], *where(info))
            return


__all__ = ["RayJobRunner"]
