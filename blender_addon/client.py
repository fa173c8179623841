"""Stdlib HTTP + Server-Sent Events client for the engine server (``python -m engine.serve``).

No bpy in here: the add-on's background threads and ``scripts/generate.py`` use it as it is, and the tests
drive it without Blender. Every failure is an :class:`EngineError` whose message can be shown to a user as
it is; :class:`EngineUnreachable` means nothing answered at all (the engine is not running).

:class:`EventFollower` follows one job's event stream on its own thread, hands every event to a callback
(which puts it on the main thread's queue), and reconnects with ``Last-Event-ID`` after a dropped connection
or an engine restart, so no event is missed or repeated.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBMIT_TIMEOUT = 120.0
"""Seconds to wait for the engine to accept a job."""


class EngineError(Exception):
    """A request to the engine failed; ``str(error)`` is a readable sentence.

    ``status`` is the HTTP status when the engine answered (e.g. 422 for a refused prompt), else None.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class EngineUnreachable(EngineError):
    """Nothing answered at the engine URL (connection refused or reset, no such host)."""


@dataclass
class SSEEvent:
    """One Server-Sent Event with its JSON data decoded."""

    id: int | None
    type: str
    data: dict[str, Any]


class SSEParser:
    """Incremental Server-Sent Events parser: feed it lines (without their newline), get events back.

    Follows the HTML spec's rules: ``field: value`` lines (one optional space after the colon), comments
    starting with ``:``, multi-line ``data`` joined with newlines, an event dispatched at a blank line.
    """

    def __init__(self) -> None:
        self._data: list[str] = []
        self._type = ""
        self._id: str | None = None
        self.retry_ms: int | None = None
        """The latest ``retry:`` the server suggested (reconnect delay)."""

    def feed(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment, e.g. ": keep-alive"
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, kind, event_id = self._data, self._type or "message", self._id
        self._data, self._type, self._id = [], "", None
        if not data:
            return None
        text = "\n".join(data)
        try:
            payload = json.loads(text)
        except ValueError:
            payload = {"text": text}
        if not isinstance(payload, dict):
            payload = {"value": payload}
        return SSEEvent(int(event_id) if event_id and event_id.isdigit() else None, kind, payload)


class EngineClient:
    """Blocking calls to one engine. Thread-safe: every call opens its own connection.

    ``token_file`` is read on every call, so a token created by an engine that starts later is picked up.
    Proxies are never used (the engine is normally on loopback, and nothing here goes anywhere else).
    """

    def __init__(self, url: str, token_file: str | os.PathLike[str] | None, timeout: float = 15.0):
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineError(f"engine URL {url!r} is not an http:// address like http://127.0.0.1:8765")
        self.url = url.strip().rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self.token_file = Path(token_file).expanduser() if token_file else None
        self.timeout = timeout

    # ------------------------------------------------------------------ endpoints
    def health(self, timeout: float | None = None) -> dict[str, Any]:
        """``GET /v1/health`` (no token needed)."""
        return self._json("GET", "/v1/health", auth=False, timeout=timeout)

    def submit(self, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """``POST /v1/jobs``: the accepted job ({"id", "state", "queue_position", "links"}). The engine checks
        the prompt against its prior before answering (the first time it loads it), so this may take a while.

        ``idempotency_key`` names this submission: sent again after a dropped connection, the engine answers
        with the job it already made instead of queueing a second one."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._json(
            "POST", "/v1/jobs", body=request, timeout=max(self.timeout, SUBMIT_TIMEOUT), headers=headers
        )

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the engine has, oldest first (summaries: no request or seeds)."""
        return list(self._json("GET", "/v1/jobs")["jobs"])

    def job(self, job_id: str) -> dict[str, Any]:
        """A job in full: state, progress, request, seeds, results, error."""
        return self._json("GET", f"/v1/jobs/{_quote(job_id)}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the engine to drop (queued) or stop (running) a job; returns the job."""
        return self._json("POST", f"/v1/jobs/{_quote(job_id)}/cancel")

    def download(self, path: str, dest: str | os.PathLike[str]) -> Path:
        """Save a result (``path`` as given in a result event, e.g. ``/v1/jobs/ID/result?variant=0``) to
        ``dest``, atomically: ``dest`` either does not exist or is complete."""
        dest = Path(dest)
        conn, resp = self._open("GET", path, timeout=max(self.timeout, 60.0))
        try:
            if resp.status != 200:
                raise self._error(resp, "GET", path)
            write_atomically(dest, iter(lambda: resp.read(1 << 16), b""))
        except OSError as e:
            raise EngineError(f"could not save {path} to {dest}: {e}") from None
        finally:
            conn.close()
        return dest

    def events(
        self, job_id: str, last_event_id: int = 0, read_timeout: float = 60.0, on_open=None
    ) -> Iterator[SSEEvent]:
        """A job's events from the one after ``last_event_id`` until the engine ends the stream.

        ``read_timeout`` bounds the silence between lines (the engine sends a keep-alive every ~15 s), so a
        hung connection ends in an :class:`EngineUnreachable` instead of blocking forever. ``on_open`` gets
        the connection once it is open, so another thread can close it to stop the stream at once.
        """
        path = f"/v1/jobs/{_quote(job_id)}/events"
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(int(last_event_id))}
        conn, resp = self._open("GET", path, headers=headers, timeout=read_timeout)
        try:
            if on_open is not None:
                on_open(conn)
            if resp.status != 200:
                raise self._error(resp, "GET", path)
            parser = SSEParser()
            while True:
                try:
                    raw = resp.readline()
                except (OSError, http.client.HTTPException) as e:
                    raise EngineUnreachable(f"the event stream of job {job_id} broke: {_reason(e)}") from None
                if not raw.endswith(b"\n"):
                    return  # the engine ended the stream (a line cut short by a dropped connection is dropped)
                event = parser.feed(raw.decode("utf-8", "replace").rstrip("\r\n"))
                if event is not None:
                    yield event
        finally:
            conn.close()

    # ------------------------------------------------------------------ plumbing
    def token(self) -> str:
        if self.token_file is None:
            raise EngineError(
                "no token file is set: point the add-on preferences at the engine's DATA_DIR/token"
            )
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise EngineError(
                f"the engine's token file {self.token_file} does not exist: start the engine once (it creates "
                "the file), or set the token file in the add-on preferences"
            ) from None
        except OSError as e:
            raise EngineError(f"cannot read the engine's token file {self.token_file}: {e}") from None
        if not token:
            raise EngineError(f"the engine's token file {self.token_file} is empty")
        return token

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout)

    def _open(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        timeout: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        hdrs = {"Accept": "application/json", **(headers or {})}
        if auth:
            hdrs["Authorization"] = f"Bearer {self.token()}"
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        conn = self._connection(self.timeout if timeout is None else timeout)
        try:
            conn.request(method, self._base + path, body=body, headers=hdrs)
            return conn, conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, socket.gaierror) as e:
            conn.close()
            raise EngineUnreachable(f"no engine answers at {self.url} ({_reason(e)})") from None
        except TimeoutError:
            conn.close()
            raise EngineError(f"the engine at {self.url} did not answer {method} {path} in time") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise EngineUnreachable(
                f"lost the connection to the engine at {self.url} ({_reason(e)})"
            ) from None

    def _json(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        auth: bool = True,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        conn, resp = self._open(method, path, body=data, headers=headers, auth=auth, timeout=timeout)
        try:
            try:
                raw = resp.read()
            except (OSError, http.client.HTTPException) as e:
                raise EngineUnreachable(
                    f"lost the connection to the engine at {self.url} ({_reason(e)})"
                ) from None
            if resp.status >= 400:
                raise self._error(resp, method, path, raw)
            try:
                return json.loads(raw)
            except ValueError:
                raise EngineError(
                    f"{self.url} answered {method} {path} with something that is not JSON: is it the engine?"
                ) from None
        finally:
            conn.close()

    def _error(
        self, resp: http.client.HTTPResponse, method: str, path: str, raw: bytes | None = None
    ) -> EngineError:
        if raw is None:
            try:
                raw = resp.read()
            except (OSError, http.client.HTTPException):
                raw = b""
        try:
            message = str(json.loads(raw)["error"])
        except (ValueError, KeyError, TypeError):
            message = f"{method} {path} failed with HTTP {resp.status} {resp.reason}"
        if resp.status == 401:
            message += f" (token file: {self.token_file})"
        return EngineError(message, resp.status)


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _reason(e: BaseException) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


class EventFollower:
    """Follows one job's events on a background thread until a final status, an unknown job, or ``stop()``.

    ``post`` receives ``("event", job_key, SSEEvent)``, ``("stream_lost", job_key, message)`` when the
    connection drops (it keeps retrying, with backoff, from the last event it passed on) and
    ``("stream_ended", job_key, reason)`` once it gives up for good: "final", "missing" (the engine does
    not know the job) or "stopped". ``post`` must be thread-safe (a ``queue.Queue.put``).
    """

    def __init__(
        self,
        client: EngineClient,
        job_key: str,
        job_id: str,
        post: Callable[[tuple[str, str, Any]], None],
        last_event_id: int = 0,
        retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0),
        read_timeout: float = 60.0,
    ):
        self.client, self.job_key, self.job_id = client, job_key, job_id
        self.last_event_id = last_event_id
        self._post = post
        self._delays = retry_delays
        self._read_timeout = read_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"text3d-events-{job_id[:8]}", daemon=True)

    def start(self) -> EventFollower:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, join: float = 0.0) -> None:
        """Stop following now (closes the open connection, so a blocked read returns)."""
        self._stop.set()
        with self._lock:
            conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if join:
            self._thread.join(join)

    def _opened(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
        if self._stop.is_set():  # stop() ran before the connection was registered
            self.stop()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                for ev in self.client.events(
                    self.job_id, self.last_event_id, self._read_timeout, on_open=self._opened
                ):
                    if self._stop.is_set():
                        break
                    failures = 0
                    if ev.id is not None:
                        self.last_event_id = ev.id
                    self._post(("event", self.job_key, ev))
                    if ev.type == "status" and ev.data.get("final"):
                        self._post(("stream_ended", self.job_key, "final"))
                        return
                # The stream ended without a final state: the engine is stopping. Reconnect and resume.
                error = "the engine closed the event stream (stopping or restarting)"
            except EngineError as e:
                if e.status == 404:
                    self._post(("stream_ended", self.job_key, "missing"))
                    return
                error = str(e)
            finally:
                with self._lock:
                    self._conn = None
            if self._stop.is_set():
                break
            if failures == 0:
                self._post(("stream_lost", self.job_key, error))
            delay = self._delays[min(failures, len(self._delays) - 1)]
            failures += 1
            self._stop.wait(delay)
        self._post(("stream_ended", self.job_key, "stopped"))


def write_atomically(dest: Path, chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to ``dest`` so that it either keeps its old content or holds all of the new: a
    hidden temporary file beside it, then ``os.replace``. The add-on's one way of writing files."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def wait_for_health(
    client: EngineClient,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 0.25,
) -> dict[str, Any]:
    """Poll ``/v1/health`` until it answers (returns it), ``alive()`` turns false (EngineUnreachable) or
    ``timeout`` seconds pass (EngineError)."""
    deadline = time.monotonic() + timeout
    last: EngineError | None = None
    while True:
        try:
            return client.health(timeout=min(5.0, max(0.5, timeout)))
        except EngineError as e:
            last = e
        if not alive():
            raise EngineUnreachable(f"the engine exited while starting ({last})")
        if time.monotonic() > deadline:
            raise EngineError(f"the engine at {client.url} did not answer within {timeout:.0f} s ({last})")
        time.sleep(interval)
