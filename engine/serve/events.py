"""Per-job event logs (append-only, increasing ids, persisted as ``events.jsonl``) and their SSE stream.

The training thread only calls :meth:`EventLog.append`, which takes a lock, appends to a list and puts
the event on a queue: no file I/O, no image encoding, no network. One :class:`EventWriter` thread
encodes preview images, appends the lines to ``events.jsonl`` and only then *publishes* the events to
the streams. So a client never sees an event that is not on disk yet: after a hard kill the server
reloads the log and continues with the next id, and a reconnecting client's ``Last-Event-ID`` never
refers to an event that was lost.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import io
import json
import logging
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

JOB_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
"""Every state of a job (the API's ``JobState``)."""
FINAL_STATES = frozenset({"done", "failed", "cancelled"})
"""Job states after which nothing more happens (an "interrupted" job resumes on the next start). Clients
do not keep a copy: status events and job listings carry ``final``."""

RETRY_MS = 2000
"""Reconnect delay suggested to SSE clients (EventSource honours it)."""


@dataclass
class Event:
    id: int
    type: str
    """progress, preview, status, result or error."""
    data: dict[str, Any]
    time: float = field(default_factory=time.time)

    @property
    def is_final(self) -> bool:
        return self.type == "status" and self.data.get("state") in FINAL_STATES

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "type": self.type, "time": self.time, "data": self.data})

    def sse(self) -> str:
        # json.dumps escapes newlines, so the payload is always a single data: line.
        return f"id: {self.id}\nevent: {self.type}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


@dataclass
class _Pending:
    log: EventLog
    event: Event
    image: np.ndarray | None = None
    image_path: Path | None = None


class EventWriter:
    """The one thread that persists events (and preview PNGs) and then publishes them to listeners."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Pending | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="engine-event-writer", daemon=True)
        self._thread.start()
        self._warned = False

    def put(self, item: _Pending) -> None:
        self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything put so far is written and published."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch = [item]
            while True:  # drain what is there: one file open per job per batch
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            pending: list[_Pending] = []
            for it in batch:
                if it is None:
                    stop = True
                elif isinstance(it, threading.Event):
                    self._write(pending)
                    pending = []
                    it.set()
                else:
                    pending.append(it)
            self._write(pending)
            if stop:
                return

    def _write(self, items: list[_Pending]) -> None:
        by_log: dict[int, list[_Pending]] = {}
        for it in items:
            by_log.setdefault(id(it.log), []).append(it)
        for group in by_log.values():
            elog = group[0].log
            lines = []
            for it in group:
                if it.image is not None:
                    png = _png(it.image)
                    it.event.data["png"] = base64.b64encode(png).decode("ascii")
                    if it.image_path is not None:
                        self._try(_write_bytes, it.image_path, png)
                lines.append(it.event.to_json() + "\n")
            self._try(_append_text, elog.path, "".join(lines))
            # Publish even when the disk write failed: a stalled stream would be worse than a log gap.
            elog._publish(group[-1].event.id)

    def _try(self, write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except OSError as e:
            if not self._warned:
                log.error("cannot write job events: %s", e)
                self._warned = True


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _append_text(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


class EventLog:
    """One job's events: appended from any thread, read by any number of streams, loaded lazily."""

    def __init__(self, path: Path, writer: EventWriter):
        self.path = path
        self._writer = writer
        self._lock = threading.Lock()
        self._events: list[Event] | None = None
        self._next_id = 1
        self._published = 0
        self._listeners: set[Callable[[], None]] = set()

    def _load_locked(self) -> None:
        if self._events is not None:
            return
        events: list[Event] = []
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        d = json.loads(line)
                        ev = Event(int(d["id"]), str(d["type"]), dict(d["data"]), float(d["time"]))
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a hard kill
                    if not events or ev.id > events[-1].id:
                        events.append(ev)
        except FileNotFoundError:
            pass
        self._events = events
        self._published = events[-1].id if events else 0
        self._next_id = self._published + 1

    def append(
        self,
        type: str,
        data: dict[str, Any],
        image: np.ndarray | None = None,
        image_path: Path | None = None,
    ) -> Event:
        """Add an event (cheap: safe on the training thread). ``image`` is PNG-encoded into ``data["png"]``
        by the writer thread, and saved to ``image_path`` if given."""
        data = {k: _finite(v) for k, v in data.items()}
        with self._lock:
            self._load_locked()
            assert self._events is not None
            ev = Event(self._next_id, type, data)
            self._next_id += 1
            self._events.append(ev)
        self._writer.put(_Pending(self, ev, image, image_path))
        return ev

    def since(self, last_id: int) -> list[Event]:
        """Published events with id > ``last_id``, in order."""
        with self._lock:
            self._load_locked()
            assert self._events is not None
            start = bisect.bisect_right(self._events, last_id, key=lambda e: e.id)
            return [e for e in self._events[start:] if e.id <= self._published]

    def last(self, type: str) -> Event | None:
        """The latest published event of a type."""
        with self._lock:
            self._load_locked()
            assert self._events is not None
            for e in reversed(self._events):
                if e.type == type and e.id <= self._published:
                    return e
        return None

    @property
    def settled(self) -> bool:
        """Every appended event is published (nothing is still on its way to disk)."""
        with self._lock:
            return self._events is None or self._published >= self._next_id - 1

    def subscribe(self, notify: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.add(notify)

    def unsubscribe(self, notify: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.discard(notify)

    def _publish(self, upto: int) -> None:
        with self._lock:
            self._published = max(self._published, upto)
            listeners = list(self._listeners)
        for notify in listeners:
            notify()


def _finite(v: Any) -> Any:
    """NaN/inf are not JSON: send null instead."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


async def sse_stream(
    elog: EventLog,
    last_id: int,
    finished: Callable[[], bool],
    keepalive: float,
) -> AsyncIterator[str]:
    """Server-Sent Events: everything after ``last_id``, then live events, keep-alive comments every
    ``keepalive`` seconds; ends after a final status event, or when ``finished()`` says no more events
    will come (a final job, or a server that is stopping)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def notify() -> None:  # called on the writer thread
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop is closed: the server is gone
            pass

    elog.subscribe(notify)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last_sent = time.monotonic()
        while True:
            wake.clear()  # before reading, so an event published meanwhile wakes the wait below
            for ev in elog.since(last_id):
                yield ev.sse()
                last_id, last_sent = ev.id, time.monotonic()
                if ev.is_final:
                    return
            if finished() and elog.settled and not elog.since(last_id):
                return
            # Wake at least once a second to notice a stopping server.
            wait = max(0.05, min(1.0, keepalive - (time.monotonic() - last_sent)))
            try:
                await asyncio.wait_for(wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            if time.monotonic() - last_sent >= keepalive:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
    finally:
        elog.unsubscribe(notify)
