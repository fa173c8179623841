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
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_server import FAST_OPTIONS, REPO, EngineProcess, child_env, free_port, health

__all__ = ["FAST_OPTIONS", "REPO", "child_env", "free_port", "health"]  # re-exported for the tests

SESSION = Path(__file__).with_name("blender_session.py")

FAST_OPTIONS_TEXT = "; ".join(f"{k} = {json.dumps(v)}" for k, v in FAST_OPTIONS.items())
"""The tiny-run options, as typed into the panel's Extra Settings field."""


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


class Engine(EngineProcess):
    """``python -m engine.serve`` on a free loopback port with its own data folder (log: engine.log)."""

    def __init__(self, data_dir: Path):
        super().__init__(data_dir, log_name="engine.log")


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
