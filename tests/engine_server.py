"""The real engine server as a test subprocess: ``python -m engine.serve`` on a free loopback port with its
own data folder. Shared by the server tests (``tests/serve``) and the add-on tests (``tests/blender_addon``),
which both drive it as a user would: over HTTP, with signals, across restarts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FAST_OPTIONS = {
    "train.render_size": 32,
    "train.checkpoint_every": 5,
    "field.grid.compile": False,
    "field.grid.n_levels": 8,
    "field.grid.log2_hashmap_size": 14,
    "renderer.n_samples": 32,
    "export.resolution": 64,
    "export.target_faces": 3000,
    "export.turntable_views": 2,
    "export.turntable_size": 64,
}
"""Run options for a tiny job (~10 it/s on this CPU, checkpoints every 5 steps, ~1–2 s export)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: offline, unbuffered, the caller's thread limits."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}


def health(url: str, timeout: float = 2.0) -> dict | None:
    """The engine's /v1/health, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url + "/v1/health", timeout=timeout) as r:
            return json.loads(r.read())
    except OSError:
        return None


class EngineProcess:
    """A running ``python -m engine.serve [args]``; its output goes to a log file beside ``data_dir``
    (a file, not a pipe: a full pipe would block the server)."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        startup_timeout: float = 120.0,
        log_name: str = "",
        env: dict[str, str] | None = None,
    ):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / (log_name or f"{data_dir.name}-server-{self.port}.log")
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "engine.serve", "--port", str(self.port), "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            [*cmd, *args], cwd=REPO, env=child_env(**(env or {})), stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + startup_timeout
        while health(self.url) is None:
            if self.proc.poll() is not None:
                self._log.close()
                pytest.fail(f"the engine exited with {self.proc.returncode} on start:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the engine was not healthy after {startup_timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        """The last lines the engine printed."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit; its exit code. Not stopping in time fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._log.close()
            pytest.fail(f"the engine did not stop within {timeout} s after signal {sig}:\n{self.log()}")
        self._log.close()
        return code

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as after a crash or power cut of the process."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()
