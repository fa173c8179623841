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
import json
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
STARTED_FILE = "started_jobs.json"
"""In the work folder: the jobs this Blender started (any session), with where each was started."""
STARTED_KEPT = 200
"""How many started jobs the file remembers (the newest)."""


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
        self._downloading: set[tuple[str, Any]] = set()
        self._new_thumbnails: list[str] = []
        self.detected_python: str | None = None
        """The last Detect Python answer ("" when no candidate could run the engine)."""
        self._counter = itertools.count(1)
        self._listed = False
        self._closed = False
        self.started: dict[str, dict[str, Any]] = _read_started(self.work_dir / STARTED_FILE)
        """Engine job id → {"origin": …, "hidden": bool} of every job this Blender started, kept in the work
        folder so that after a restart, a disable/enable or Reload Scripts they are still this Blender's
        (auto-imported when they finish in the file they came from)."""

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
    def generate(self, request: dict[str, Any], origin: dict[str, Any] | None = None) -> JobView:
        """Queue a job from a request (see :func:`~.state.build_request`), starting the engine if needed.
        ``origin`` says where it was started (the bpy layer's file and scene: see ``runtime``); it is
        remembered with the job, and the job's results are imported automatically only there.

        Raises EngineError (the job stays listed, failed) when no engine answers and none can start."""
        key = f"local-{next(self._counter)}"
        job = JobView(key=key, prompt=str(request["prompt"]), method=str(request.get("method", "sds")))
        job.request = dict(request)
        job.origin = dict(origin or {})
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
        request, key = dict(job.request), job.submission_key

        def submit() -> tuple[dict, dict | None]:
            accepted = client.submit(request, idempotency_key=key)  # a resend after a drop: the same job
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
        job.auto_import_pending = False  # the user asked: import as soon as it is here
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

    def _thumbnail(self, job: JobView) -> None:
        """Fetch the turntable the engine rendered of a finished job's first variant (the jobs list's
        thumbnail), once; it comes back in :attr:`PumpResult.thumbnails`."""
        first = job.results.get(min(job.results)) if job.results else None
        url = first.get("turntable") if first else None
        if not url or job.id is None or job.thumbnail is not None or ("thumb", job.id) in self._downloading:
            return
        dest = self.work_dir / "thumbnails" / f"{job.id}.png"
        if dest.is_file():
            job.thumbnail = dest
            self._new_thumbnails.append(job.key)
            return
        client = self.supervisor.require_client()
        self._downloading.add(("thumb", job.id))
        self._tasks.put("thumbnail", job.key, lambda: client.download(str(url), dest))

    def detect_python(self, candidates: list[str]) -> None:
        """Try each interpreter (in the background): the first that can import the engine and torch comes
        back as ("task", "python", "", path or None, error)."""
        import subprocess

        def probe() -> str | None:
            for py in candidates:
                try:
                    r = subprocess.run([py, "-c", "import engine, torch"], capture_output=True, timeout=120)
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if r.returncode == 0:
                    return py
            return None

        self._tasks.put("python", "", probe)

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
        result.thumbnails, self._new_thumbnails = self._new_thumbnails, []
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
        if task == "python":
            self.detected_python = value or ""
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
        elif task == "thumbnail":
            self._downloading.discard(("thumb", job.id))
            if error is None:
                job.thumbnail = value
                self._new_thumbnails.append(job.key)
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
        self._remember(job)
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
            mine = self.started.get(str(info["id"]))
            if mine is not None and mine.get("hidden"):
                continue
            job = job_from_info(info, local=mine is not None)
            job.origin = dict(mine["origin"]) if mine is not None else {}
            self.jobs[job.key] = job
            if job.state == "done":
                self._thumbnail(job)
            if job.active:
                self._follow(job)

    def _on_job_state(self, job: JobView, result: PumpResult) -> None:
        if job.state == "done":
            self._thumbnail(job)
            result.notices.append(f"text3d: '{job.prompt}' is done ({len(job.results)} asset(s))")
            if job.local and self.settings.auto_import and not job.imported:
                job.import_requested = job.auto_import_pending = True
                for variant in job.results:
                    self._download(job, variant)
        elif job.state == "failed":
            result.notices.append(f"text3d: '{job.prompt}' failed: {job.error or job.message}")

    def _write_preview(self, key: str, png_b64: str, result: PumpResult) -> None:
        """A new file per preview (``<job>_v<variant>_s<step>.png``; the job's previous one is deleted): a
        file rewritten in place can look unchanged to Blender's image loading within the same second."""
        job = self.jobs[key]
        path = self.work_dir / "previews" / f"{key}_v{job.preview_variant}_s{job.preview_step}.png"
        try:
            write_atomically(path, [base64.b64decode(png_b64, validate=True)])
        except (ValueError, OSError) as e:
            result.notices.append(f"text3d: could not save the preview of '{job.prompt}': {e}")
            return
        old, job.preview_path = job.preview_path, path
        job.variant_previews[job.preview_variant] = path
        if old is not None and old != path and old not in job.variant_previews.values():
            old.unlink(missing_ok=True)
        result.previews.append(key)

    def remove(self, key: str) -> None:
        """Take a finished job off the list (the engine keeps it; a job this Blender started stays hidden
        after a restart too)."""
        job = self.jobs.get(key)
        if job is None or job.active:
            return
        del self.jobs[key]
        if job.id is not None:
            self.started.setdefault(job.id, {"origin": job.origin}).update(hidden=True)
            self._save_started()

    def clear_finished(self) -> int:
        """Remove every finished job from the list; how many were removed."""
        keys = [k for k, j in self.jobs.items() if not j.active]
        for k in keys:
            self.remove(k)
        return len(keys)

    def _remember(self, job: JobView) -> None:
        assert job.id is not None
        self.started[job.id] = {"origin": job.origin, "prompt": job.prompt, "created": job.created}
        self._save_started()

    def _save_started(self) -> None:
        newest = sorted(self.started.items(), key=lambda kv: kv[1].get("created", 0.0))[-STARTED_KEPT:]
        self.started = dict(newest)
        try:
            write_atomically(self.work_dir / STARTED_FILE, [json.dumps(self.started, indent=1).encode()])
        except OSError:
            pass  # a read-only work folder costs only the memory of this Blender's jobs across restarts

    # ------------------------------------------------------------------ shutdown
    def shutdown(self, keep_engine: bool | None = None) -> None:
        """Stop the threads and let the engine started here stop itself unless it is kept (then it keeps
        running). Returns at once: the threads are daemons that end on their own (a follower within its
        read timeout), and the engine checkpoints in its own time."""
        if self._closed:
            return
        self._closed = True
        keep = self.settings.keep_engine if keep_engine is None else keep_engine
        self._tasks.stop()
        for f in self._followers.values():
            f.stop()
        self._followers.clear()
        self.supervisor.shutdown(keep)


def _read_started(path: Path) -> dict[str, dict[str, Any]]:
    """The remembered jobs (empty if the file is missing or unreadable: nothing else depends on it)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("origin", {}), dict)
    }
