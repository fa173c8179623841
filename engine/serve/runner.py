"""Job runners: the small interface the HTTP app talks to, and the local implementation.

:class:`LocalJobRunner` runs one worker thread per device (engine.device decides which), takes jobs
first in, first out from a bounded queue, keeps loaded priors in a per-worker cache so consecutive jobs
with the same prior skip loading, and calls :func:`engine.variants.run_variant` per variant with the
callbacks of :class:`engine.serve.reporting.VariantReporter`, which only append to the job's event log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Protocol

import torch

from engine.config import RunConfig
from engine.device import describe
from engine.priors import resolve_prior_spec
from engine.serve.jobs import JobRecord, JobStore
from engine.serve.reporting import VariantReporter, result_data
from engine.train import MODEL_BUILD_LOCK, TrainingDiverged
from engine.variants import run_variant

log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The bounded queue has no room; the client should retry later (HTTP 429)."""


class JobRunner(Protocol):
    """What the HTTP app needs from whatever runs the jobs.

    :class:`LocalJobRunner` runs them on threads in this process. A distributed runner (e.g. Ray: one
    actor per GPU, possibly on other machines) is a new class implementing these same methods — its
    ``submit`` hands the job to a Ray queue, its actors call :func:`engine.variants.run_variant` and ship
    the events back to the job's log — and the app does not change.
    """

    def start(self, resume: list[JobRecord]) -> None:
        """Start the workers; ``resume`` (jobs unfinished by a previous process) run first, in order."""

    def check(self, cfg: RunConfig) -> None:
        """Raise ValueError if ``cfg`` cannot run here (unknown prior, words the prior does not know)."""

    def submit(self, job: JobRecord) -> int:
        """Queue a job; returns its position (1: next). Raises QueueFull."""
        ...

    def cancel(self, job: JobRecord) -> None:
        """Drop a queued job now; ask a running one to stop (it checkpoints and reports "cancelled")."""

    def queue_position(self, job_id: str) -> int | None:
        """0: running, 1: next, …; None: not waiting or running."""
        ...

    def queue_length(self) -> int: ...

    def running(self) -> int: ...

    def queue_full(self) -> bool: ...

    def devices(self) -> list[str]:
        """Human-readable devices of the workers."""
        ...

    def workers(self) -> int: ...

    def begin_shutdown(self) -> None:
        """Stop taking jobs; running ones checkpoint and are marked "interrupted" (resumed next start)."""

    def join(self, timeout: float) -> None:
        """Wait for the workers to stop."""

    def stopped(self) -> bool:
        """True once shutting down and every worker has stopped."""
        ...


class PriorCache:
    """Loaded priors by (spec, device): each is loaded once and reused across jobs (a few kept, LRU)."""

    def __init__(self, max_entries: int = 2):
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def preload(self, spec: str, device: torch.device) -> threading.Thread:
        """Load ``spec`` in the background now, so that the first job that needs it does not wait for the
        load (~2–5 s on CPU, almost all of it importing diffusers and transformers). A job that asks for it
        meanwhile waits for this load instead of starting its own. A failure is only logged: the job that
        needs the prior loads it again and fails with the reason."""

        def load() -> None:
            try:
                _, seconds = self.get(spec, device)
                log.info("preloaded the prior %r on %s in %.1f s", spec, describe(device), seconds)
            except Exception as e:  # reported by the job that needs it; a worker must start regardless
                log.warning("could not preload the prior %r on %s: %s", spec, describe(device), e)

        t = threading.Thread(target=load, name=f"preload-{spec}", daemon=True)
        t.start()
        return t

    def get(self, spec: str, device: torch.device) -> tuple[Any, float]:
        """(prior, seconds this call spent on loading it: 0 when it was cached, the wait when a load in
        progress, e.g. a preload, had to finish first)."""
        from engine.priors import load_prior

        key = (spec, str(device))
        t0 = time.perf_counter()
        waited = not self._lock.acquire(blocking=False)
        if waited:
            self._lock.acquire()
        try:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], time.perf_counter() - t0 if waited else 0.0
            with MODEL_BUILD_LOCK:  # another worker may be loading a prior or building a run right now
                prior = load_prior(resolve_prior_spec(spec), device)
            self._cache[key] = prior
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
            return prior, time.perf_counter() - t0
        finally:
            self._lock.release()


def preload_spec(value: str | None) -> str | None:
    """``--preload`` as a prior spec: the jobs' default prior when not given, None for 'none'. Raises
    ValueError naming a spec that does not resolve (found at start, not by a worker in the background)."""
    if value is None:
        return RunConfig().prior
    if value.strip().lower() == "none":
        return None
    try:
        resolve_prior_spec(value)
    except (ValueError, OSError) as e:
        raise ValueError(f"--preload {value!r}: {e} (or --preload none)") from None
    return value


class QueueViews:
    """The queue as the HTTP app reads it, shared by every runner: a FIFO ``_queue`` of job ids and the
    jobs in flight in ``_running`` (id → the runner's own record), both guarded by ``_cond``."""

    _cond: threading.Condition
    _queue: deque[str]
    _running: dict[str, Any]
    queue_size: int

    def queue_position(self, job_id: str) -> int | None:
        with self._cond:
            if job_id in self._running:
                return 0
            try:
                return self._queue.index(job_id) + 1
            except ValueError:
                return None

    def queue_length(self) -> int:
        with self._cond:
            return len(self._queue)

    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def queue_full(self) -> bool:
        with self._cond:
            return len(self._queue) >= self.queue_size


class LocalJobRunner(QueueViews):
    """Worker threads in this process, one per device by default; FIFO; bounded queue."""

    def __init__(
        self,
        store: JobStore,
        devices: list[torch.device],
        queue_size: int,
        workers: int | None = None,
        stopping: threading.Event | None = None,
        preload: str | None = None,
    ):
        self.store = store
        self._preload = preload
        self._devices = devices
        self.queue_size = queue_size
        n = len(devices) if workers is None else workers
        # Workers are spread over the devices; more than one per device only competes for it.
        self._worker_devices = [devices[i % len(devices)] for i in range(n)]
        self._stopping_signal = stopping
        self._queue: deque[str] = deque()
        self._running: dict[str, JobRecord] = {}
        self._cond = threading.Condition()
        self._shutting_down = False
        self._threads: list[threading.Thread] = []
        self._alive = 0
        self._stopped = threading.Event()
        self._tokenizers: dict[str, Any] = {}
        """Tokenizers of the local priors jobs named, by folder (for the vocabulary check at the door)."""
        self._check_lock = threading.Lock()

    # ------------------------------------------------------------------ interface
    def start(self, resume: list[JobRecord]) -> None:
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
            self._alive = len(self._worker_devices)
        for k, device in enumerate(self._worker_devices):
            # Each worker keeps its own loaded priors: ESD/VSD attach LoRA adapters to the prior's UNet while
            # they run, so two jobs running at once must never share one.
            priors = PriorCache(max_entries=2)
            if self._preload:
                priors.preload(self._preload, device)
            t = threading.Thread(
                target=self._work, args=(device, priors), name=f"engine-worker-{k}", daemon=True
            )
            t.start()
            self._threads.append(t)
        if self._stopping_signal is not None:
            threading.Thread(target=self._watch_stopping, name="engine-stop-watch", daemon=True).start()

    def check(self, cfg: RunConfig) -> None:
        """Refuse a job whose prior does not resolve or whose prompt has words a closed-vocabulary prior does
        not know. Only the prior's tokenizer is loaded (cached): no weights, whatever the prior's size."""
        from engine.priors.words import check_words, load_tokenizer

        try:
            folder = resolve_prior_spec(cfg.prior).identity().folder
        except OSError as e:  # e.g. a name too long for the filesystem
            raise ValueError(f"prior {cfg.prior[:80]!r}: {e.strerror or e}") from None
        if folder is None:
            return  # a hub model: Stable Diffusion's CLIP tokenizer is open-vocabulary
        with self._check_lock:
            key = str(folder)
            if key not in self._tokenizers:
                try:
                    self._tokenizers[key] = load_tokenizer(folder)
                except Exception as e:
                    raise ValueError(f"cannot load the tokenizer of the prior {cfg.prior!r}: {e}") from None
            check_words(self._tokenizers[key], cfg.prompt, cfg.prior)

    def submit(self, job: JobRecord) -> int:
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
            self._cond.notify()
        return pos

    def cancel(self, job: JobRecord) -> None:
        with self._cond:
            queued = job.id in self._queue
            if queued:
                self._queue.remove(job.id)
            elif job.id in self._running:
                job.cancel_reason = "cancel"
                job.cancel.set()  # the trainer sees it before its next step
                return
        if queued:
            job.cancel_reason = "cancel"
            self.store.set_state(job, "cancelled", "cancelled before it started")

    def devices(self) -> list[str]:
        return [describe(d) for d in self._devices]

    def workers(self) -> int:
        return len(self._worker_devices)

    def begin_shutdown(self) -> None:
        with self._cond:
            self._shutting_down = True
            for job in self._running.values():
                job.cancel_reason = job.cancel_reason or "shutdown"
                job.cancel.set()
            self._cond.notify_all()
            if self._alive == 0:
                self._stopped.set()

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))

    def stopped(self) -> bool:
        return self._stopped.is_set()

    # ------------------------------------------------------------------ workers
    def _watch_stopping(self) -> None:
        assert self._stopping_signal is not None
        self._stopping_signal.wait()
        self.begin_shutdown()

    def _work(self, device: torch.device, priors: PriorCache) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._shutting_down:
                        self._cond.wait()
                    if self._shutting_down:
                        return
                    job = self.store.get(self._queue.popleft())
                    if job is None:
                        continue
                    self._running[job.id] = job
                try:
                    self._run(job, device, priors)
                except TrainingDiverged as e:
                    self._fail(job, str(e))
                except (ValueError, FileNotFoundError) as e:
                    self._fail(job, str(e))
                except Exception as e:  # a bug or an environment problem: keep the worker alive
                    log.exception("job %s failed", job.id)
                    self._fail(job, f"{type(e).__name__}: {e}")
                finally:
                    with self._cond:
                        self._running.pop(job.id, None)
        finally:
            with self._cond:
                self._alive -= 1
                if self._alive == 0 and self._shutting_down:
                    self._stopped.set()

    def _fail(self, job: JobRecord, message: str) -> None:
        try:
            self.store.fail(job, message)
        except OSError:
            log.exception("cannot record the failure of job %s", job.id)

    def _run(self, job: JobRecord, device: torch.device, priors: PriorCache) -> None:
        cfg = job.config
        self.store.set_state(job, "running", f"loading the prior on {describe(device)}")
        prior, t_load = priors.get(cfg.prior, device)
        prior.vocabulary_check(cfg.prompt)
        variants = job.variants()
        stopped: dict[str, int] = {}  # where a cancelled/interrupted variant's checkpoint stands
        for v in variants:
            if job.cancel.is_set():
                break
            if v.done:  # finished before a restart: report it if the report was lost
                if v.index not in job.results:
                    self.store.add_result(job, result_data(job, v, json.loads(v.record_path.read_text())))
                continue
            rep = VariantReporter(self.store, job, v, len(variants))
            r = run_variant(
                job.plan.config_for(v),
                prior,
                v,
                rep.callbacks(),
                job.cancel,
                resume=v.checkpoint.exists(),
                prior_load_seconds=t_load,
                on_start=rep.on_start,
            )
            t_load = 0.0
            if r.status == "cancelled":
                stopped = {"variant": v.index, "checkpoint_step": r.step}
                if job.progress is not None and job.progress.get("variant") == v.index:
                    # Progress events are rate-limited: the last one may be a few steps behind the
                    # checkpoint. status.json should say where the job really stopped.
                    job.progress = {**job.progress, "step": r.step}
                break
            self.store.add_result(job, result_data(job, v, r.record))
        if len(job.results) == len(variants):
            n = len(variants)
            self.store.set_state(job, "done", f"finished {n} asset{'s' if n > 1 else ''}")
        elif job.cancel_reason == "shutdown":
            self.store.set_state(
                job,
                "interrupted",
                "the server is stopping; the job continues from its checkpoint on restart",
                **stopped,
            )
        else:
            self.store.set_state(job, "cancelled", "cancelled", **stopped)
