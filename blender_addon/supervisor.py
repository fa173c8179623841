"""The engine as the add-on sees it: where it is, whether it answers, and the local process started for it.

No bpy in here. A health monitor thread polls ``/v1/health`` and a waiter thread per started process reports
its exit; both only post messages. :meth:`EngineSupervisor.handle` applies them on the main thread (from
the controller's pump) and keeps :class:`~.state.EngineState` up to date: connected, starting, not running
or crashed — with the exit status and the engine's last output when it crashed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import EngineClient, EngineError
from .engine_process import DEFAULT_URL, EngineProcess, default_data_dir, describe_exit, is_loopback_url
from .state import CONNECTED, CRASHED, NOT_RUNNING, STARTING, EngineState, PumpResult, catalog_from_health


@dataclass(frozen=True)
class EngineSettings:
    """Where the engine is and how to start it (the add-on preferences, as plain data)."""

    url: str = DEFAULT_URL
    token_file: str = ""
    """Empty: ``<data_dir>/token``."""
    auto_start: bool = True
    """Start a local engine when none answers and a job is requested."""
    python: str = ""
    """The engine environment's interpreter (empty: ``$TEXT3D_PYTHON``)."""
    data_dir: str = ""
    """The engine's data folder (empty: the engine's default)."""
    auto_import: bool = True
    """Import the results of jobs started here as soon as they are done."""
    keep_engine: bool = False
    """Leave an engine started here running when Blender quits or the add-on is disabled."""
    extra_args: tuple[str, ...] = ()
    """More command-line flags for ``python -m engine.serve`` (e.g. ``--workers 1``)."""
    allow_remote: bool = True
    """Talk to an engine on another computer (Blender's "Allow Online Access"); loopback always works."""

    def data_path(self) -> Path | None:
        return Path(self.data_dir).expanduser() if self.data_dir else None

    def token_path(self) -> Path:
        if self.token_file:
            return Path(self.token_file).expanduser()
        return (self.data_path() or default_data_dir()) / "token"

    def python_path(self) -> str:
        return self.python or os.environ.get("TEXT3D_PYTHON", "")


class _HealthMonitor:
    """Polls ``/v1/health`` (often while the engine starts); posts ("health", client, answer, error)."""

    def __init__(self, supervisor: EngineSupervisor, interval: float):
        self._sup = supervisor
        self._interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="text3d-health", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, join: float = 0.0) -> None:
        self._stop.set()
        self._wake.set()
        if join:
            self._thread.join(join)

    def _run(self) -> None:
        while not self._stop.is_set():
            client = self._sup.client
            if client is not None:
                try:
                    self._sup.post(("health", client, client.health(timeout=3.0), None))
                except EngineError as e:
                    self._sup.post(("health", client, None, e))
            self._wake.wait(0.3 if self._sup.state.status == STARTING else self._interval)
            self._wake.clear()


class EngineSupervisor:
    """Connection to the engine and the lifecycle of the one started from here. Main thread only, except
    :meth:`post`."""

    def __init__(
        self,
        settings: EngineSettings,
        log_path: Path,
        post: Callable[[tuple], None],
        on_connected: Callable[[], None],
        health_interval: float = 2.0,
    ):
        self.settings = settings
        self.log_path = log_path
        self.post = post
        self._on_connected = on_connected
        self.state = EngineState(url=settings.url, log_path=str(log_path))
        self.client: EngineClient | None = None
        self.process: EngineProcess | None = None
        self._generation = 0
        """Bumped per launched process: exit reports of older processes are ignored."""
        self._restarting = False
        self._make_client()
        self._monitor = _HealthMonitor(self, health_interval)

    # ------------------------------------------------------------------ settings
    def configure(self, settings: EngineSettings) -> bool:
        """Apply new settings; True if they point at another engine (URL or token file changed)."""
        old, self.settings = self.settings, settings
        if (old.url, old.token_path(), old.allow_remote) == (
            settings.url,
            settings.token_path(),
            settings.allow_remote,
        ):
            return False
        self.state.url = settings.url
        self._make_client()
        if self.process is None:
            self.state.set(NOT_RUNNING, "checking the new engine address…")
        self._monitor.wake()
        return True

    def _make_client(self) -> None:
        self.client = None
        if not self.settings.allow_remote and not is_loopback_url(self.settings.url):
            self.state.set(
                NOT_RUNNING,
                f"{self.settings.url} is not on this computer and Blender's online access is off "
                "(Preferences ▸ System ▸ Network): use a local engine or allow online access",
            )
            return
        try:
            self.client = EngineClient(self.settings.url, self.settings.token_path())
        except EngineError as e:
            self.state.set(NOT_RUNNING, str(e))

    def require_client(self) -> EngineClient:
        if self.client is None:
            raise EngineError(self.state.message or f"cannot use the engine URL {self.settings.url!r}")
        return self.client

    # ------------------------------------------------------------------ queries
    @property
    def connected(self) -> bool:
        return self.state.status == CONNECTED

    def can_start(self) -> bool:
        """An engine can be started from here (a loopback URL and a Python for it)."""
        return is_loopback_url(self.settings.url) and bool(self.settings.python_path())

    def check(self, timeout: float = 2.0) -> bool:
        """Ask ``/v1/health`` now (blocking, short); True if an engine answers."""
        if self.client is None:
            return False
        try:
            self._healthy(self.client.health(timeout=timeout))
            return True
        except EngineError:
            return False

    # ------------------------------------------------------------------ lifecycle
    def ensure(self) -> None:
        """Make sure an engine answers or is starting: start one if allowed, else raise EngineError."""
        # A short check: on this computer a refused connection answers at once; only an engine address that
        # does not answer at all could hold Blender's main thread, and not for long.
        if self.state.status in (CONNECTED, STARTING) or self.check(timeout=0.5):
            return
        self.require_client()
        if not self.settings.auto_start:
            raise EngineError(
                f"no engine answers at {self.settings.url} and auto-start is off: start one with "
                "'python -m engine.serve', or turn on auto-start in the add-on preferences"
            )
        self.start()

    def start(self) -> None:
        """Launch a local engine (EngineError with the reason if it cannot even be launched)."""
        if self.process is not None and self.process.running:
            raise EngineError("the engine started from Blender is already running: use Restart")
        try:
            proc = EngineProcess(
                self.settings.python_path(),
                self.settings.url,
                self.log_path,
                self.settings.data_path(),
                self.settings.extra_args,
            )
            proc.start()
        except ValueError as e:
            self.state.set(NOT_RUNNING, str(e))
            raise EngineError(str(e)) from None
        self._generation += 1
        gen = self._generation
        self.process = proc
        self.state.owned, self.state.pid = True, proc.pid
        self.state.set(STARTING, f"started {proc.describe()}; log: {proc.log_path}")
        threading.Thread(
            target=lambda: self.post(("exit", gen, proc.wait())), name="text3d-engine-wait", daemon=True
        ).start()
        self._monitor.wake()

    def restart(self) -> None:
        """Stop the engine started here, if it runs, and start a new one (jobs resume from checkpoints)."""
        old = self.process
        if old is None or not old.running:
            self.start()
            return
        self.process = None
        self._generation += 1
        self._restarting = True
        self.state.owned, self.state.pid = False, None
        self.state.set(STARTING, "restarting: waiting for the old engine to checkpoint and stop…")

        def stop_then_start() -> None:
            old.stop()
            self.post(("restart",))

        threading.Thread(target=stop_then_start, name="text3d-engine-restart", daemon=True).start()

    def stop(self) -> None:
        """Stop the engine started here (running jobs checkpoint and resume on the next start)."""
        proc = self.process
        if proc is None or not proc.running:
            raise EngineError(
                "no engine started from Blender is running (an engine started elsewhere is stopped there)"
            )
        proc.stop_requested = True
        self.state.set(self.state.status, "stopping (running jobs save a checkpoint first)…")
        threading.Thread(target=proc.stop, name="text3d-engine-stop", daemon=True).start()

    def shutdown(self, keep_engine: bool) -> None:
        """Stop polling; let the engine started here stop itself (it checkpoints: see
        :meth:`EngineProcess.release`), or leave it running if ``keep_engine``. Returns at once: disabling
        the add-on, Reload Scripts or quitting never waits for the engine."""
        self._monitor.stop()
        proc, self.process = self.process, None
        if proc is not None and proc.running:
            if keep_engine:
                proc.detach()
            else:
                proc.release()

    # ------------------------------------------------------------------ messages (main thread)
    def handle(self, msg: tuple, result: PumpResult) -> None:
        """Apply a "health", "exit" or "restart" message."""
        kind = msg[0]
        if kind == "health":
            _, client, health, error = msg
            if client is self.client:
                result.changed |= self._on_health(health, error)
        elif kind == "exit":
            _, gen, code = msg
            if gen == self._generation:
                self._on_exit(code, result)
        elif kind == "restart":
            self._restarting = False
            try:
                self.start()
            except EngineError as e:
                result.notices.append(f"text3d: could not restart the engine: {e}")
            result.changed = True
        if self.state.status == STARTING:
            result.changed = True  # the panel counts the seconds

    def _healthy(self, health: dict[str, Any]) -> bool:
        s = self.state
        s.device, s.version = str(health.get("device", "")), str(health.get("version", ""))
        s.queue_length, s.running = int(health.get("queue_length", 0)), int(health.get("running", 0))
        catalog = catalog_from_health(health, s.catalog)
        menus_changed, s.catalog = catalog != s.catalog, catalog
        was = s.status
        changed = s.set(CONNECTED, "") or menus_changed
        if was != CONNECTED:
            self._on_connected()
        return changed

    def _on_health(self, health: dict[str, Any] | None, error: EngineError | None) -> bool:
        if health is not None:
            return self._healthy(health)
        s = self.state
        if s.status == CRASHED or self._restarting:
            return False  # keep showing why it crashed until the user restarts it
        if self.process is not None and self.process.running:
            if s.status == STARTING:
                return False
            return s.set(s.status, f"the engine is not answering: {error}")
        return s.set(NOT_RUNNING, self._not_running_message())

    def _not_running_message(self) -> str:
        text = f"No engine answers at {self.settings.url}."
        if self.can_start():
            return text + " Press Start to launch one."
        if is_loopback_url(self.settings.url):
            return text + (
                " Set the engine's Python in the add-on preferences to start it from here, or run "
                "'python -m engine.serve'."
            )
        return text

    def _on_exit(self, code: int | None, result: PumpResult) -> None:
        proc, self.process = self.process, None
        self.state.owned, self.state.pid = False, None
        result.changed = True
        if proc is None or proc.stop_requested:
            self.state.set(NOT_RUNNING, f"the engine started from Blender stopped ({describe_exit(code)})")
            return
        tail = proc.log_tail()
        message = f"The engine {describe_exit(code)}." + (f" Last output:\n{tail}" if tail else "")
        self.state.set(CRASHED, message)
        result.notices.append(f"text3d: {message}")

    def wake(self) -> None:
        """Check health now (e.g. after a request failed to connect)."""
        self._monitor.wake()
