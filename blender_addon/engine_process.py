"""Start, watch and stop a local engine process (``python -m engine.serve``) — no bpy in here.

The engine runs in the Python environment the user points the add-on at (Blender's own Python has no
torch). It is launched through a small bootstrap that watches its stdin: Blender holds the other end of
that pipe, so when Blender exits — cleanly or by a crash — the pipe closes and the engine stops itself
with SIGTERM (it checkpoints running jobs, which resume on the next start). No orphan engine is left
behind unless the user asked to keep it: :meth:`EngineProcess.detach` tells the bootstrap to stop watching.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8765"
DATA_DIR_ENV = "TEXT3D_ENGINE_DATA"
"""The engine's own environment variable for its data folder (see engine.serve)."""

DETACH = "detach"
"""The line that tells the bootstrap to keep the engine running after the pipe closes."""

BOOTSTRAP = f"""
import os, runpy, signal, sys, threading

def _watch_parent():
    # Blender holds the write end of stdin: EOF means it quit or crashed, so stop cleanly (checkpoint).
    for line in sys.stdin:
        if line.strip() == {DETACH!r}:
            return
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=_watch_parent, name="text3d-parent-watch", daemon=True).start()
sys.argv = ["python -m engine.serve", *sys.argv[1:]]
runpy.run_module("engine.serve", run_name="__main__", alter_sys=True)
"""
"""Run with ``python -c``: the engine's own ``__main__`` plus the parent watch (stdlib only)."""


def default_data_dir() -> Path:
    """Where an engine started without ``--data-dir`` keeps its jobs and token (mirrors engine.serve)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "text3d" / "engine"


def host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"engine URL {url!r} is not an http:// address like {DEFAULT_URL}")
    return parts.hostname, parts.port or 80


def is_loopback_url(url: str) -> bool:
    """True for http://127.x.x.x, http://[::1] and http://localhost — the only engines the add-on starts."""
    try:
        host, _ = host_port(url)
    except ValueError:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe_exit(code: int | None) -> str:
    """'exited with code 1', 'was killed by signal SIGKILL', …"""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


class EngineProcess:
    """One engine process started by this Blender session.

    ``python`` is the interpreter of the engine's environment (it must be able to ``import engine``),
    ``url`` must be a loopback http:// URL (its host and port are where the engine listens), ``data_dir``
    (None: the engine's default) holds its jobs and token, and the engine's output goes to ``log_path``.
    """

    def __init__(
        self,
        python: str,
        url: str,
        log_path: str | os.PathLike[str],
        data_dir: str | os.PathLike[str] | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        if not python:
            raise ValueError(
                "no Python is set for the engine: in the add-on preferences, set Auto-start ▸ Python to the "
                "interpreter of the environment where the engine is installed (e.g. <repo>/.venv/bin/python)"
            )
        if not is_loopback_url(url):
            raise ValueError(
                f"the add-on only starts engines on this computer (a loopback URL like {DEFAULT_URL}); "
                f"{url!r} is not one: start that engine yourself"
            )
        self.python = python
        self.url = url
        self.host, self.port = host_port(url)
        self.log_path = Path(log_path)
        self.data_dir = Path(data_dir).expanduser() if data_dir else None
        self.extra_args = tuple(extra_args)
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stop_requested = False
        """Set by :meth:`stop`: an exit after it is not a crash."""
        self._lock = threading.Lock()

    @property
    def token_file(self) -> Path:
        return (self.data_dir or default_data_dir()) / "token"

    def command(self) -> list[str]:
        cmd = [self.python, "-c", BOOTSTRAP, "--host", self.host, "--port", str(self.port)]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        return cmd + list(self.extra_args)

    def start(self) -> None:
        """Launch the process (returns at once; poll the URL's /v1/health to know when it is ready).

        Raises ValueError with a readable message when it cannot even be launched."""
        python = Path(self.python).expanduser()
        if not (python.is_file() or _on_path(self.python)):
            raise ValueError(
                f"the engine's Python {self.python!r} does not exist (see the add-on preferences)"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {self.describe()}\n".encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.PIPE,
                    stdout=log,  # a file, not a pipe: a full pipe would block the engine
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=str(self.log_path.parent),
                    start_new_session=os.name == "posix",  # Ctrl-C in Blender's terminal is Blender's
                )
            except OSError as e:
                raise ValueError(
                    f"could not start the engine with {self.python!r}: {e.strerror or e}"
                ) from None

    def describe(self) -> str:
        data = f" --data-dir {self.data_dir}" if self.data_dir else ""
        return f"{self.python} -m engine.serve --host {self.host} --port {self.port}{data}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def poll(self) -> int | None:
        """The exit code once the process has exited (negative: killed by that signal), else None."""
        return None if self.proc is None else self.proc.poll()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the process exits (its code) or ``timeout`` passes (None)."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (running jobs checkpoint and resume on the next start), SIGKILL after ``timeout`` s."""
        with self._lock:
            self.stop_requested = True
            if self.proc is None:
                return None
            self._close_stdin()
            if self.proc.poll() is None:
                self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()

    def release(self) -> None:
        """Let go without waiting: close Blender's end of the pipe, and the bootstrap stops the engine with
        SIGTERM itself — running jobs checkpoint in their own time (the server allows them 60 s) while
        Blender carries on, and nobody SIGKILLs an engine that is still saving. A daemon thread reaps the
        process when it exits, so no zombie is left while Blender runs."""
        with self._lock:
            self.stop_requested = True
            proc = self.proc
            if proc is None:
                return
            self._close_stdin()
        if proc.poll() is None:
            threading.Thread(target=proc.wait, name="text3d-engine-reap", daemon=True).start()

    def detach(self) -> None:
        """Leave the engine running after Blender quits (the user chose to keep it)."""
        with self._lock:
            self.stop_requested = True
            if self.proc is not None and self.proc.stdin is not None and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.write(f"{DETACH}\n".encode())
                    self.proc.stdin.flush()
                except OSError:
                    pass
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def log_tail(self, lines: int = 6, max_bytes: int = 16384) -> str:
        """The last non-empty lines the engine printed in its latest start (for error messages)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - max_bytes))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        text = text.rsplit("\n=== ", 1)[-1]
        kept = [ln.rstrip() for ln in text.splitlines()[1:] if ln.strip()]
        return "\n".join(kept[-lines:])


def _on_path(name: str) -> bool:
    from shutil import which

    return os.sep not in name and which(name) is not None


def python_candidates(repo: Path | None = None) -> list[str]:
    """Interpreters likely to have the engine: ``$TEXT3D_PYTHON``, then ``<repo>/.venv``'s, then this one."""
    out = []
    if os.environ.get("TEXT3D_PYTHON"):
        out.append(os.environ["TEXT3D_PYTHON"])
    if repo is not None:
        sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
        venv = repo.joinpath(".venv", *sub)
        if venv.is_file():
            out.append(str(venv))
    for name in ("python3", "python"):
        found = _which(name)
        if found:
            out.append(found)
    out.append(sys.executable)
    return list(dict.fromkeys(out))


def _which(name: str) -> str | None:
    from shutil import which

    return which(name)
