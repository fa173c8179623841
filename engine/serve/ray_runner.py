"""Jobs on a Ray cluster: ``python -m engine.serve --runner ray [--ray-address auto|HOST:PORT]``.

The server stays the only HTTP endpoint and the only job store; Ray runs the variants. Each worker is a
Ray actor (:class:`engine.serve.worker.EngineWorker`, one per GPU with ``num_gpus=1``, or CPU actors where
the cluster has none) that keeps its loaded priors between jobs. One dispatch thread per actor takes the
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

This is the only module that imports Ray; it is imported only when ``--runner ray`` is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError

import engine
from engine import atomic
from engine.export.pipeline import output_paths
from engine.serve.jobs import JobRecord, JobStore
from engine.serve.reporting import VariantReporter, result_data
from engine.serve.runner import LocalJobRunner, QueueFull, QueueViews
from engine.serve.worker import EngineWorker, TaskOutcome, VariantTask
from engine.train import Progress

log = logging.getLogger(__name__)

POLL_S = 0.1
"""Seconds between drains of a running actor's outbox (progress reaches clients at most this late)."""
RETRY_S = (2.0, 30.0)
"""First and longest wait between attempts to replace a lost worker."""
LOST = (ActorDiedError, ActorUnavailableError, RayActorError)
"""What Ray raises when the actor's process or node is gone (the task may have been mid-way)."""


class RaySetupError(ValueError):
    """The Ray cluster cannot run the workers as asked; the message names the problem and the fix."""


@dataclass
class RaySettings:
    """Where and how the workers run (the ``--ray-*`` flags, ``--workers`` and ``--device``)."""

    address: str | None = None
    """None: start a local Ray inside the server; "auto": the cluster ``ray start`` made on this machine;
    HOST:PORT: the head node's GCS address (``ray start --head`` prints it)."""
    num_cpus: int | None = None
    """CPUs of the local Ray started when ``address`` is None (default: every core)."""
    workers: int | None = None
    """Actors (None: one per GPU of the cluster, or one per node where it has no GPU; 0: accept jobs but
    run none)."""
    device: str = "auto"
    """auto: GPU actors when the cluster has GPUs, else CPU actors; cpu; cuda."""
    cpus_per_worker: float | None = None
    """CPUs each actor reserves (None: 1 for GPU actors; a CPU actor gets its node's CPUs shared among the
    actors placed there). CPU actors run that many torch threads."""
    runtime_env: dict[str, Any] | None = None
    """Ray runtime_env for the actors, e.g. ``{"env_vars": {...}}`` or ``{"py_modules": [...]}``."""
    start_timeout: float = 120.0
    """Seconds a worker may take to start (scheduling, importing torch) before that is reported as an error."""
    max_worker_losses: int = 3
    """A variant whose worker dies this many times fails its job (a job that kills its worker would loop)."""
    preload: str | None = None
    """A prior spec every actor loads as soon as it starts (and every replacement actor), so that its first
    job does not wait for it; None: an actor loads a prior when a job first needs it."""


@dataclass
class _Plan:
    """The actors to start: how many, their Ray options and their torch device."""

    n: int
    options: dict[str, Any]
    device: str
    torch_threads: int
    describe: str


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
    """:class:`~engine.serve.runner.JobRunner` on Ray actors. ``connect()`` first (before the server listens:
    a bad set-up is an exit with a message), then ``attach()`` the app's store, then the app starts it."""

    def __init__(self, settings: RaySettings, queue_size: int):
        self.settings = settings
        self.queue_size = queue_size
        self.store: JobStore | None = None
        self._door: LocalJobRunner | None = None
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._running: dict[str, _JobRun] = {}
        """Started jobs in the order they started (dict order)."""
        self._slots: list[_Slot] = []
        self._plan: _Plan | None = None
        self._shutting_down = False
        self._alive = 0
        self._stopped = threading.Event()
        self._started_ray = False
        self._stopping_signal: threading.Event | None = None
        self.namespace = f"text3d-{uuid.uuid4().hex[:8]}"
        """Ray namespace of this server's actors (named ``worker-<k>``), so servers sharing a cluster never meet."""

    # ------------------------------------------------------------------ set-up
    def connect(self) -> None:
        """Join or start Ray and start the workers; raises RaySetupError naming the problem and the fix."""
        s = self.settings
        actors: list = []
        try:
            self._started_ray = _connect(s, self.namespace)
            self._plan = _plan(s)
            actors = [self._spawn(k) for k in range(self._plan.n)]
            infos = _wait_ready(actors, s.start_timeout, self._plan)
        except BaseException as e:
            for a in actors:
                _kill(a)
            self.close()
            if isinstance(e, RaySetupError) or not isinstance(e, Exception):
                raise
            raise RaySetupError(f"cannot start the Ray workers: {_first_line(e)}") from e
        self._slots = [_Slot(k, a, i, up=True) for k, (a, i) in enumerate(zip(actors, infos))]
        for slot in self._slots:
            log.info("ray worker %d: %s on %s (pid %s)", slot.index, slot.info["device"], *_where(slot.info))

    def attach(self, store: JobStore, stopping: threading.Event | None = None) -> None:
        """Use the app's job store (and its stop signal: running jobs checkpoint as soon as a stop begins)."""
        self.store = store
        # The door is the thread runner's own check (only tokenizers, loaded here); it never runs a job.
        self._door = LocalJobRunner(store, [torch.device("cpu")], self.queue_size, workers=0)
        self._stopping_signal = stopping

    def describe(self) -> str:
        """One line for the server's start-up output."""
        ctx = ray.get_runtime_context()
        where = "a local Ray started by this server" if self._started_ray else "the Ray cluster"
        return (
            f"ray: {len(self._slots)} worker(s) ({self._plan.describe if self._plan else 'none'}) on {where} "
            f"at {ctx.gcs_address}, namespace {self.namespace}"
        )

    def _spawn(self, index: int):
        assert self._plan is not None
        p = self._plan
        return (
            ray.remote(EngineWorker)
            .options(name=f"worker-{index}", namespace=self.namespace, **p.options)
            .remote(device=p.device, torch_threads=p.torch_threads, preload=self.settings.preload)
        )

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
        return [self._plan.describe.split()[0] if self._plan else "CPU"]

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
            _kill(s.actor)
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False

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
            outcome = TaskOutcome("failed", 0, message=_first_line(e))
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
        why = _first_line(err)
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
        _kill(slot.actor)
        delay = RETRY_S[0]
        while True:
            with self._cond:
                if self._shutting_down:
                    return
            try:
                actor = self._spawn(slot.index)
                (info,) = _wait_ready([actor], self.settings.start_timeout, self._plan)
            except RaySetupError as e:
                log.error("worker %d cannot be replaced: %s (retrying in %.0f s)", slot.index, e, delay)
                with self._cond:
                    self._cond.wait(delay)
                delay = min(delay * 2, RETRY_S[1])
                continue
            with self._cond:
                slot.actor, slot.info, slot.up = actor, info, True
                self._cond.notify_all()
            log.info("worker %d replaced: %s on %s (pid %s)", slot.index, info["device"], *_where(info))
            return


# ---------------------------------------------------------------------- cluster helpers
def _connect(s: RaySettings, namespace: str) -> bool:
    """Start or join Ray; True when this process started it (and so stops it)."""
    if ray.is_initialized():
        return False
    if s.address is None:
        ray.init(
            address="local",  # never a cluster someone else started: that takes --ray-address
            num_cpus=s.num_cpus or os.cpu_count(),
            include_dashboard=False,
            namespace=namespace,
            logging_level=logging.WARNING,
        )
        return True
    if s.address != "auto":
        _check_reachable(s.address)
    try:
        ray.init(address=s.address, namespace=namespace, logging_level=logging.WARNING)
    except ConnectionError as e:
        auth = (
            ""
            if os.environ.get("RAY_AUTH_MODE") or s.address == "auto"
            else "; if it uses token authentication (Ray's default), set RAY_AUTH_MODE=token and give this "
            "machine the head's token (~/.ray/auth_token or RAY_AUTH_TOKEN)"
        )
        raise RaySetupError(
            f"cannot join a Ray cluster at --ray-address {s.address} ({_first_line(e)}): start one with "
            f"`ray start --head` (docs/RAY.md), or leave out --ray-address to start a local one{auth}"
        ) from None
    except Exception as e:  # version mismatch, authentication, …
        hint = (
            "copy the head's ~/.ray/auth_token to this machine or set RAY_AUTH_TOKEN"
            if "auth" in str(e).lower()
            else "use the same Ray version as the cluster (pip install -e '.[ray]')"
        )
        raise RaySetupError(f"cannot join the Ray cluster at {s.address}: {_first_line(e)}; {hint}") from None
    return False


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's own retries, when nothing listens at HOST:PORT."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise RaySetupError(
            f"--ray-address {address!r} is not HOST:PORT or auto: give the address `ray start --head` printed"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
            pass
    except OSError as e:
        raise RaySetupError(
            f"cannot reach the Ray cluster at {hostport} ({e.strerror or e}): start it with `ray start --head` "
            "on that machine, or check the address and the firewall"
        ) from None


def _plan(s: RaySettings) -> _Plan:
    """How many actors of which kind, from the flags and what the cluster has; refuses what cannot fit."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    node_cpus = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    node_cpus = [c for c in node_cpus if c > 0]
    pref = (s.device or "auto").strip().lower()
    if pref not in ("auto", "cpu", "cuda"):
        raise RaySetupError(
            f"--device {s.device} with --runner ray: use auto, cpu or cuda (Ray gives each GPU actor one GPU)"
        )
    use_gpu = gpus > 0 if pref == "auto" else pref == "cuda"
    common = {"max_concurrency": 4, "max_restarts": 0, "scheduling_strategy": "SPREAD"}
    if s.runtime_env:
        common["runtime_env"] = s.runtime_env
    if use_gpu:
        if gpus == 0:
            raise RaySetupError(
                "--device cuda: the Ray cluster has no GPU; join GPU machines with `ray start --address …` "
                "(docs/RAY.md) or use --device auto"
            )
        n = gpus if s.workers is None else s.workers
        if n > gpus:
            raise RaySetupError(
                f"{n} GPU workers asked for, but the Ray cluster has {gpus} GPU(s): lower --workers or add GPUs"
            )
        cpus = s.cpus_per_worker or 1.0
        return _Plan(n, {**common, "num_gpus": 1, "num_cpus": cpus}, "cuda", max(1, int(cpus)), "GPU actors")
    if not node_cpus:
        raise RaySetupError("the Ray cluster has no node with CPUs: start the nodes with `ray start` first")
    n = len(node_cpus) if s.workers is None else s.workers
    per_node = math.ceil(max(n, 1) / len(node_cpus))
    cpus = s.cpus_per_worker or max(1.0, float(int(min(node_cpus) // per_node)))
    fits = sum(int(c // cpus) for c in node_cpus)
    if n > fits:
        have = " + ".join(f"{c:g}" for c in node_cpus)
        raise RaySetupError(
            f"{n} CPU workers of {cpus:g} CPU(s) each do not fit the Ray cluster ({have} CPUs): "
            "lower --workers or --ray-cpus-per-worker, or add nodes"
        )
    return _Plan(
        n, {**common, "num_cpus": cpus}, "cpu", max(1, int(cpus)), f"CPU actors, {cpus:g} CPU(s) each"
    )


def _wait_ready(actors: list, timeout: float, plan: _Plan | None) -> list[dict[str, Any]]:
    """Every actor's info() once it runs; RaySetupError when one cannot start or import the engine."""
    if not actors:
        return []
    refs = [a.info.remote() for a in actors]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    infos = []
    for k, ref in enumerate(refs):
        if ref not in ready:
            free = ray.available_resources()
            if plan is not None and _has_room(free, plan):
                # Room but no actor: resources are not the reason, so do not send the user after them; a
                # worker that is slow or failing to start is nearly always the node's Python.
                raise RaySetupError(
                    f"Ray worker {k} did not start within {timeout:g} s although the cluster has room for it "
                    f"(free: {free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU): its Python most likely "
                    "cannot import the engine or a dependency; install this package on every node, in the "
                    "Python that runs `ray start` (pip install -e '.[ray]'), or ship it with --ray-runtime-env; "
                    "the node's Ray logs say why (/tmp/ray/session_latest/logs/worker-*.err)"
                )
            raise RaySetupError(
                f"Ray worker {k} did not start within {timeout:g} s: no node has a free "
                f"{'GPU' if plan and plan.device == 'cuda' else 'CPU share'} for it right now (free: "
                f"{free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU), or it is slow to start; free "
                "them, lower --workers or --ray-cpus-per-worker, or raise --ray-start-timeout"
            )
        try:
            info = ray.get(ref, timeout=10)
        except (RayActorError, GetTimeoutError, ray.exceptions.RayError) as e:
            log.debug("worker %d failed to start: %s", k, e)  # the whole traceback, for --log-level debug
            raise RaySetupError(_start_failure(k, e)) from None
        if info["engine"] != engine.__version__:
            raise RaySetupError(
                f"Ray worker {k} on {info['node']} runs engine {info['engine']}, this server {engine.__version__}: "
                "install the same version on every node"
            )
        infos.append(info)
    return infos


def _has_room(free: dict[str, float], plan: _Plan) -> bool:
    """Whether the cluster's free resources could hold one more actor of ``plan``."""
    need = {"CPU": plan.options.get("num_cpus", 0), "GPU": plan.options.get("num_gpus", 0)}
    return all(free.get(key, 0) >= amount for key, amount in need.items())


def _start_failure(k: int, e: BaseException) -> str:
    line = _first_line(e)
    if re.search(r"No module named '?engine\b|module 'engine' has no attribute|from 'engine", line):
        return (
            f"the Ray workers cannot import the engine ({line}): install this package on every node, in the "
            "Python that runs `ray start` (pip install -e '.[ray]'), or ship it with --ray-runtime-env"
        )
    return f"Ray worker {k} failed to start: {line}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _first_line(e: BaseException) -> str:
    """The line that says what went wrong: for an error raised on a worker (its traceback is in the text)
    the exception's own last line, else the message's first line."""
    lines = [_ANSI.sub("", ln).strip() for ln in str(e).splitlines()]
    lines = [ln for ln in lines if ln]
    raised = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    line = raised[-1] if isinstance(e, ray.exceptions.RayError) and raised else (lines[0] if lines else "")
    return line[:300] or type(e).__name__


def _where(info: dict[str, Any]) -> tuple[str, Any]:
    return info.get("node", "?"), info.get("pid", "?")


def _kill(actor) -> None:
    if actor is None:
        return
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone, or Ray is shutting down
        pass


__all__ = ["RayJobRunner", "RaySettings", "RaySetupError"]
