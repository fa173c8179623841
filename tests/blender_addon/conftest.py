"""Fixtures for the add-on tests: the built extension zip, a real engine subprocess, and a runner for
Blender sessions.

Everything that needs Blender runs in a fresh ``python`` process with the bpy module (``blender_session.py``)
and a temporary Blender user folder (``BLENDER_USER_RESOURCES``), so installs, preferences and registered
classes never leak between tests or into the pytest process (which never imports bpy). The session prints one
``REPORT {json}`` line; the assertions live in the tests.
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
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SESSION = Path(__file__).with_name("blender_session.py")

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
"""A tiny run (~10 it/s on this CPU, checkpoints every 5 steps, ~1 s export) for end-to-end tests."""

FAST_OPTIONS_TEXT = "; ".join(f"{k} = {json.dumps(v)}" for k, v in FAST_OPTIONS.items())
"""The same, as typed into the panel's Extra Settings field."""


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


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting to be reaped counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Engine:
    """``python -m engine.serve`` on a free loopback port with its own data folder."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "engine.log"
        self._log = open(self.log_path, "w")
        cmd = [sys.executable, "-m", "engine.serve", "--port", str(self.port), "--data-dir", str(data_dir)]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=child_env(), stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while health(self.url) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the test engine did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine shared by the tests that only submit jobs to it (jobs run one after another)."""
    e = Engine(tmp_path_factory.mktemp("engine") / "data")
    yield e
    e.stop()


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python scripts/build_extension.py --out DIR`` → the installable zip."""
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_extension.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (zip_path,) = out.glob("*.zip")
    return zip_path


def blender_env(tmp_path: Path) -> dict[str, str]:
    """A fresh Blender user folder (extensions, preferences, the add-on's own files) for one session."""
    return child_env(BLENDER_USER_RESOURCES=str(tmp_path / "blender_user"))


def run_session(scenario: str, params: dict, tmp_path: Path, timeout: float = 300) -> dict:
    """Run ``blender_session.py SCENARIO PARAMS`` with bpy in a fresh process; its REPORT as a dict."""
    r = subprocess.run(
        [sys.executable, str(SESSION), scenario, json.dumps(params)],
        cwd=tmp_path,
        env=blender_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    reports = [ln[len("REPORT ") :] for ln in r.stdout.splitlines() if ln.startswith("REPORT ")]
    if r.returncode != 0 or not reports:
        pytest.fail(
            f"Blender session {scenario!r} exited with {r.returncode}\n--- stdout\n{r.stdout[-4000:]}"
            f"\n--- stderr\n{r.stderr[-4000:]}"
        )
    return json.loads(reports[-1])
