"""The add-on's core: jobs, and the one place where background results reach the main thread.

No bpy in here. Background threads — a task thread for requests and downloads, one
:class:`~.client.EventFollower` per followed job, and the :class:`~.supervisor.EngineSupervisor`'s health
monitor and process waiter — only do I/O and put messages on one queue. :meth:`Controller.pump`, called on
Blender's main thread (by a timer in Blender, directly by tests and scripts), drains it and is the only code
that changes the :class:`~.state.JobView` objects and the engine state. It returns what the bpy layer has
to do next (load a preview image, import finished results), so that layer stays thin.
"""

from __future__ import annotations

import base64
import itertools
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .client import EngineError, EngineUnreachable, EventFollower, write_atomically
from .state import (
    CRASHED,
    REFUSED,
    STARTING,
    SUBMITTING,
    WAITING,
    EngineState,
    JobView,
    PumpResult,
    apply_event,
    job_from_info,
    update_from_info,
)
from .supervisor import EngineSettings, EngineSupervisor

HISTORY_JOBS = 20
"""How many of the engine's earlier jobs are listed."""


class _TaskThread:
    """Runs blocking requests one after another off the main thread; posts ("task", kind, key, value, error)."""

    def __init__(self, post: Callable[[tuple], None]):
        self._post = post
        self._queue: queue.Queue[tuple[str, str, Callable[[], Any]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="text3d-tasks", daemon=True)
        self._thread.start()

    def put(self, kind: str, key: str, fn: Callable[[], Any]) -> None:
        self._queue.put((kind, key, fn))

    def stop(self, join: float = 0.0) -> None:
        self._queue.put(None)
        if join:
            self._thread.join(join)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            kind, key, fn = item
            try:
                self._post(("task", kind, key, fn(), None))
            except EngineError as e:
                self._post(("task", kind, key, None, e))
            except Exception as e:  # a bug must not kill the thread: show it instead
                self._post(("task", kind, key, None, EngineError(f"unexpected error: {e!r}")))


class Controller:
    """Jobs and the engine for one Blender session. Call the public methods and :meth:`pump` from one
    thread (Blender's main thread); everything slow happens on background threads."""

    def __init__(
        self, settings: EngineSettings, work_dir: str | os.PathLike[str], health_interval: float = 2.0
    ):
        self.work_dir = Path(work_dir)
        """Where previews, downloads and the engine log are written (the extension's user folder)."""
        self.jobs: dict[str, JobView] = {}
        self._inbox: queue.Queue[tuple] = queue.Queue()
        self.supervisor = EngineSupervisor(
            settings, self.work_dir / "engine.log", self.post, self._on_connected, health_interval
        )
        self._tasks = _TaskThread(self.post)
        self._followers: dict[str, EventFollower] = {}
        self._downloading: set[tuple[str, int]] = set()
        self._counter = itertools.count(1)
        self._listed = False
        self._closed = False

    def post(self, message: tuple) -> None:
        """Thread-safe: hand a message to the next :meth:`pump`."""
        self._inbox.put(message)

    @property
    def settings(self) -> EngineSettings:
        return self.supervisor.settings

    @property
    def engine(self) -> EngineState:
        return self.supervisor.state

    @property
    def busy(self) -> bool:
        """Something is in flight (pump often)."""
        return self.engine.status == STARTING or any(j.active for j in self.jobs.values())

    def configure(self, settings: EngineSettings) -> None:
        """Apply changed preferences; another engine address means following the jobs there instead."""
        if self.supervisor.configure(settings):
            for f in self._followers.values():
                f.stop()
            self._followers.clear()
            self._listed = False

    # ------------------------------------------------------------------ engine lifecycle (delegated)
    def check_engine(self, timeout: float = 2.0) -> bool:
        return self.supervisor.check(timeout)

    def start_engine(self) -> None:
        self.supervisor.start()

    def restart_engine(self) -> None:
        self.supervisor.restart()

    def stop_engine(self) -> None:
        self.supervisor.stop()

    def _on_connected(self) -> None:
        for job in self.jobs.values():
            if job.state == WAITING:
                self._submit(job)
            elif job.id and job.active and job.key not in self._followers:
                self._follow(job)
        if not self._listed:
            self.refresh_jobs()

    # ------------------------------------------------------------------ jobs
    def generate(self, request: dict[str, Any]) -> JobView:
        """Queue a job from a request (see :func:`~.state.build_request`), starting the engine if needed.

        Raises EngineError (the job stays listed, failed) when no engine answers and none can start."""
        key = f"local-{next(self._counter)}"
        job = JobView(key=key, prompt=str(request["prompt"]), method=str(request.get("method", "sds")))
        job.request = dict(request)
        self.jobs[key] = job
        job.state = WAITING
        try:
            self.supervisor.ensure()
        except EngineError as e:
            job.state, job.error = "failed", str(e)
            raise
        if self.supervisor.connected and job.state == WAITING:
            self._submit(job)
        return job

    def _submit(self, job: JobView) -> None:
        client = self.supervisor.require_client()
        job.state, job.error = SUBMITTING, None
        request = dict(job.request)

        def submit() -> tuple[dict, dict | None]:
            accepted = client.submit(request)
            try:  # the seeds and resolved settings; the job is queued even if this fails
                return accepted, client.job(accepted["id"])
            except EngineError:
                return accepted, None

        self._tasks.put("submit", job.key, submit)

    def cancel(self, key: str) -> None:
        """Cancel a job: dropped here if not sent yet, else the engine stops it (after a checkpoint)."""
        job = self.jobs[key]
        if job.final:
            return
        job.cancel_requested = True
        if job.id is None:
            if job.state == WAITING:
                job.state, job.message = "cancelled", "cancelled before it was sent to the engine"
            return  # SUBMITTING: cancelled as soon as the engine answers with its id
        client, job_id = self.supervisor.require_client(), job.id
        job.message = "cancelling…"
        self._tasks.put("cancel", key, lambda: client.cancel(job_id))

    def refresh_jobs(self) -> None:
        """Fetch the engine's jobs (earlier sessions' included) in the background."""
        client = self.supervisor.client
        if client is None:
            return
        known = {j.id for j in self.jobs.values() if j.id}
        self._listed = True

        def fetch() -> list[dict]:
            listed = client.jobs()[-HISTORY_JOBS:]
            return [client.job(j["id"]) for j in listed if j["id"] not in known]

        self._tasks.put("list", "", fetch)

    def request_import(self, key: str) -> bool:
        """True if the job's results are on disk and can be imported now; else they are downloaded (once
        the job is done) and the key comes back in :attr:`PumpResult.imports_ready`."""
        job = self.jobs[key]
        if job.ready_to_import:
            return True
        if job.id is None or (job.final and job.state != "done" and not job.results):
            raise EngineError(f"'{job.prompt}' has no results to import ({job.status_text().lower()})")
        job.import_requested = True
        for variant in job.results:
            self._download(job, variant)
        if job.final and not job.results:
            client, job_id = self.supervisor.require_client(), job.id
            self._tasks.put("info", key, lambda: client.job(job_id))
        return False

    def _download(self, job: JobView, variant: int) -> None:
        if variant in job.files or job.id is None or (job.id, variant) in self._downloading:
            return
        dest = self.work_dir / "results" / job.id / f"variant_{variant}.glb"
        if dest.is_file():  # downloaded before (results never change)
            job.files[variant] = dest
            return
        client, path = self.supervisor.require_client(), str(job.results[variant]["glb"])
        self._downloading.add((job.id, variant))
        self._tasks.put("download", job.key, lambda: (variant, client.download(path, dest)))

    def _follow(self, job: JobView) -> None:
        old = self._followers.pop(job.key, None)
        if old is not None:
            old.stop()
        client = self.supervisor.client
        if client is None or job.id is None:
            return
        self._followers[job.key] = EventFollower(
            client, job.key, job.id, self.post, last_event_id=job.last_event_id
        ).start()

    def job_by_id(self, job_id: str) -> JobView | None:
        return next((j for j in self.jobs.values() if j.id == job_id), None)

    def sorted_jobs(self) -> list[JobView]:
        """Newest first."""
        return sorted(self.jobs.values(), key=lambda j: j.created, reverse=True)

    def active_job(self) -> JobView | None:
        """The job the progress bar follows: the newest unfinished one started here, else the newest one
        started here."""
        local = [j for j in self.sorted_jobs() if j.local]
        return next((j for j in local if j.active), local[0] if local else None)

    # ------------------------------------------------------------------ the main-thread pump
    def pump(self, max_messages: int = 10000) -> PumpResult:
        """Apply everything the background threads reported since the last call. Main thread only."""
        result = PumpResult()
        previews: dict[str, str] = {}
        for _ in range(max_messages):
            try:
                msg = self._inbox.get_nowait()
            except queue.Empty:
                break
            if msg[0] in ("health", "exit", "restart"):
                was = self.engine.status
                self.supervisor.handle(msg, result)
                if self.engine.status == CRASHED and was != CRASHED:
                    for job in self.jobs.values():
                        if job.active and job.id:
                            job.message = (
                                "the engine crashed: restart it to continue from the last checkpoint"
                            )
            else:
                self._handle(msg, result, previews)
        for key, png in previews.items():  # only the newest preview of each job is written
            self._write_preview(key, png, result)
        for job in self.jobs.values():
            if job.import_requested and job.ready_to_import:
                job.import_requested = False
                result.imports_ready.append(job.key)
        return result

    def _handle(self, msg: tuple, result: PumpResult, previews: dict[str, str]) -> None:
        kind = msg[0]
        result.changed = True
        if kind == "task":
            _, task, key, value, error = msg
            self._on_task(task, key, value, error, result)
            return
        _, key, payload = msg
        job = self.jobs.get(key)
        if job is None:
            return
        if kind == "event":
            was = job.state
            job.connection_error = None
            apply_event(job, payload)
            if payload.type == "preview" and "png" in payload.data:
                previews[key] = payload.data["png"]
            elif payload.type == "result" and (
                job.import_requested or (job.local and self.settings.auto_import)
            ):
                self._download(job, int(payload.data["variant"]))
            elif payload.type == "status" and job.state != was:
                self._on_job_state(job, result)
        elif kind == "stream_lost":
            job.connection_error = payload
            self.supervisor.wake()
        elif kind == "stream_ended":
            follower = self._followers.get(key)
            if follower is not None and not follower.alive:
                del self._followers[key]
            if payload == "missing":
                job.state, job.error = "failed", "the engine does not know this job (another data folder?)"

    def _on_task(
        self, task: str, key: str, value: Any, error: EngineError | None, result: PumpResult
    ) -> None:
        if task == "list":
            self._on_list(value, error)
            return
        job = self.jobs.get(key)
        if job is None:
            return
        if task == "submit":
            self._on_submitted(job, value, error, result)
        elif task == "cancel":
            if error is not None:
                job.message = f"could not cancel: {error}"
            else:
                update_from_info(job, value)
        elif task == "info" and error is None:
            update_from_info(job, value)
            if job.import_requested:
                for variant in job.results:
                    self._download(job, variant)
                if not job.results:
                    job.import_requested = False
                    result.notices.append(f"text3d: '{job.prompt}' has no results to import")
        elif task == "download":
            if error is not None:
                self._downloading = {d for d in self._downloading if d[0] != job.id}
                job.import_requested = False
                job.error = f"download failed: {error}"
                return
            variant, path = value
            self._downloading.discard((job.id, variant))
            job.files[variant] = path

    def _on_submitted(self, job: JobView, value: Any, error: EngineError | None, result: PumpResult) -> None:
        if error is not None:
            if isinstance(error, EngineUnreachable):
                job.state = WAITING  # it never reached the engine: sent again once one answers
                self.supervisor.wake()
            else:
                job.state = REFUSED if error.status in (400, 413, 422, 429) else "failed"
                job.ended = True
                job.error = str(error)
                result.notices.append(f"text3d: '{job.prompt}' was not accepted: {error}")
            return
        accepted, info = value
        job.id = accepted["id"]
        job.state, job.queue_position = accepted["state"], accepted.get("queue_position")
        if info is not None:
            update_from_info(job, info)
        self._follow(job)
        if job.cancel_requested:
            self.cancel(job.key)

    def _on_list(self, infos: list[dict] | None, error: EngineError | None) -> None:
        if error is not None or infos is None:
            self._listed = False
            return
        for info in infos:
            if self.job_by_id(info["id"]) is not None:
                continue
            job = job_from_info(info, local=False)
            self.jobs[job.key] = job
            if job.active:
                self._follow(job)

    def _on_job_state(self, job: JobView, result: PumpResult) -> None:
        if job.state == "done":
            result.notices.append(f"text3d: '{job.prompt}' is done ({len(job.results)} asset(s))")
            if job.local and self.settings.auto_import:
                job.import_requested = True
                for variant in job.results:
                    self._download(job, variant)
        elif job.state == "failed":
            result.notices.append(f"text3d: '{job.prompt}' failed: {job.error or job.message}")

    def _write_preview(self, key: str, png_b64: str, result: PumpResult) -> None:
        job = self.jobs[key]
        path = self.work_dir / "previews" / f"{key}.png"
        try:
            write_atomically(path, [base64.b64decode(png_b64, validate=True)])
        except (ValueError, OSError) as e:
            result.notices.append(f"text3d: could not save the preview of '{job.prompt}': {e}")
            return
        job.preview_path = path
        result.previews.append(key)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, keep_engine: bool | None = None, timeout: float = 15.0) -> None:
        """Stop the threads; stop the engine started here unless it is kept (then it keeps running)."""
        if self._closed:
            return
        self._closed = True
        keep = self.settings.keep_engine if keep_engine is None else keep_engine
        self._tasks.stop()
        for f in self._followers.values():
            f.stop()
        self.supervisor.shutdown(keep, timeout)
        for f in self._followers.values():
            f.stop(join=1.0)
        self._followers.clear()
        self._tasks.stop(join=1.0)
