"""The job store: every job in ``DATA_DIR/jobs/<id>/``, reloaded when the server starts.

Layout of a job folder::

    request.json    the request as submitted
    config.json     the resolved run config and seeds (resume needs exactly these settings)
    status.json     state, times, latest progress, results (rewritten atomically on every change)
    events.jsonl    the event log (progress, previews, status, results, errors)
    asset.glb, asset_texture.png, asset_turntable.png, run/ (run.json, checkpoint.pt, previews/)
                    one seed; several seeds: asset_s<seed>.glb … and run/seed_<seed>/ (engine.variants)
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import atomic
from engine.config import RunConfig
from engine.serve.events import FINAL_STATES, EventLog, EventWriter
from engine.variants import JobPlan, Variant

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
"""Job ids are uuid4 hex; anything else never reaches the filesystem."""
RESUMABLE_STATES = frozenset({"queued", "running", "interrupted"})


@dataclass
class JobRecord:
    """A job's identity, resolved settings and current state (the in-memory copy of its folder)."""

    id: str
    dir: Path
    request: dict[str, Any]
    config: RunConfig
    seeds: list[int]
    created: float
    events: EventLog
    state: str = "queued"
    started: float | None = None
    finished: float | None = None
    message: str = ""
    error: str | None = None
    progress: dict[str, Any] | None = None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Variant index → its ResultData."""
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str | None = None
    """"cancel" (a client asked) or "shutdown" (the server is stopping: the job resumes next start)."""
    closed: bool = False
    """The final status event has been appended: streams may end once it is published."""

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def plan(self) -> JobPlan:
        return JobPlan(self.config, self.seeds)

    def variants(self) -> list[Variant]:
        return self.plan.variants(self.dir / "asset.glb", self.dir / "run")

    def status_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "message": self.message,
            "error": self.error,
            "progress": self.progress,
            "results": [self.results[k] for k in sorted(self.results)],
        }


class JobStore:
    """Job records by id, their folders, and state changes (each persisted and announced as an event)."""

    def __init__(self, data_dir: Path, writer: EventWriter):
        self.root = data_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._writer = writer
        self._jobs: dict[str, JobRecord] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lookup
    def get(self, job_id: str) -> JobRecord | None:
        if not JOB_ID.match(job_id):
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[JobRecord]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: (j.created, j.id))

    # ------------------------------------------------------------------ create / load
    def create(self, request: dict[str, Any], config: RunConfig, seeds: list[int]) -> JobRecord:
        job_id = uuid.uuid4().hex
        d = self.root / job_id
        d.mkdir(parents=True)
        atomic.write_json(d / "request.json", request)
        atomic.write_json(d / "config.json", {"config": config.to_dict(), "seeds": seeds})
        job = JobRecord(
            job_id, d, request, config, seeds, time.time(), EventLog(d / "events.jsonl", self._writer)
        )
        with self._lock:
            self._jobs[job_id] = job
            self.save(job)
        return job

    def discard(self, job: JobRecord) -> None:
        """Forget a job that was never accepted (the queue was full)."""
        with self._lock:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.dir, ignore_errors=True)

    def load_all(self) -> list[JobRecord]:
        """Read every job folder; returns the jobs to run again (interrupted, running or queued when the
        previous process stopped), in the order they should run."""
        again = []
        for d in sorted(self.root.iterdir()):
            if not (d.is_dir() and JOB_ID.match(d.name)):
                continue
            try:
                job = self._load(d)
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("skipping unreadable job folder %s: %s", d, e)
                continue
            with self._lock:
                self._jobs[job.id] = job
            if job.state in RESUMABLE_STATES:
                again.append(job)
        # Jobs that had started go first (they hold checkpoints), then the queue in submission order.
        again.sort(key=lambda j: (j.state == "queued", j.created, j.id))
        return again

    def _load(self, d: Path) -> JobRecord:
        request = json.loads((d / "request.json").read_text())
        cfg = json.loads((d / "config.json").read_text())
        status = json.loads((d / "status.json").read_text())
        job = JobRecord(
            id=d.name,
            dir=d,
            request=request,
            config=RunConfig.from_dict(cfg["config"]),
            seeds=[int(s) for s in cfg["seeds"]],
            created=float(status["created"]),
            events=EventLog(d / "events.jsonl", self._writer),
            state=status["state"],
            started=status.get("started"),
            finished=status.get("finished"),
            message=status.get("message", ""),
            error=status.get("error"),
            progress=status.get("progress"),
            results={int(r["variant"]): r for r in status.get("results", [])},
        )
        job.closed = job.final
        return job

    # ------------------------------------------------------------------ changes
    def save(self, job: JobRecord) -> None:
        with self._lock:
            atomic.write_json(job.dir / "status.json", job.status_dict())

    def set_state(self, job: JobRecord, state: str, message: str, **event: Any) -> None:
        """Change state, persist status.json, then emit the status event (so a reader of the event has a
        status.json at least as new)."""
        from engine.serve.models import StatusData

        now = time.time()
        with self._lock:
            job.state, job.message = state, message
            if state == "running" and job.started is None:
                job.started = now
            if state in FINAL_STATES:
                job.finished = now
            self.save(job)
        job.events.append(
            "status",
            StatusData(state=state, final=state in FINAL_STATES, message=message, **event).model_dump(
                exclude_none=True
            ),
        )
        # Only now: a stream that sees the final state must also find the final event in the log.
        job.closed = state in FINAL_STATES

    def add_result(self, job: JobRecord, result: dict[str, Any]) -> None:
        with self._lock:
            job.results[result["variant"]] = result
            self.save(job)
        job.events.append("result", result)

    def fail(self, job: JobRecord, message: str) -> None:
        with self._lock:
            job.error = message
        job.events.append("error", {"message": message})
        self.set_state(job, "failed", message)
