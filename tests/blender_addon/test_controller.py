"""The bpy-free core (controller + supervisor) without Blender: readable refusals, a start-up crash with the
engine's own last words, and jobs held while the engine starts."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from blender_addon.client import EngineError
from blender_addon.controller import Controller
from blender_addon.engine_process import EngineProcess, describe_exit, is_loopback_url
from blender_addon.supervisor import EngineSettings
from tests.blender_addon.conftest import REPO, Engine, free_port


def pump_until(ctl: Controller, cond, timeout: float = 60.0) -> list[str]:
    notices: list[str] = []
    deadline = time.monotonic() + timeout
    while not cond():
        notices += ctl.pump().notices
        assert time.monotonic() < deadline, f"timed out; engine {ctl.engine}, jobs {list(ctl.jobs.values())}"
        time.sleep(0.05)
    return notices


@pytest.fixture
def make_controller(tmp_path: Path):
    made: list[Controller] = []

    def make(**settings) -> Controller:
        ctl = Controller(EngineSettings(**settings), tmp_path / "work", health_interval=0.5)
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        proc = ctl.supervisor.process
        t0 = time.monotonic()
        ctl.shutdown(keep_engine=False)
        assert time.monotonic() - t0 < 0.5  # never blocks Blender's UI
        if proc is not None:  # the engine stops itself once its stdin closes; do not leak it
            assert proc.wait(60) is not None


def test_core_imports_without_blender():
    code = (
        "import sys; import blender_addon.controller, blender_addon.client, blender_addon.engine_process; "
        "assert 'bpy' not in sys.modules, 'bpy was imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_a_refused_prompt_is_readable_on_the_job(engine: Engine, make_controller):
    ctl = make_controller(url=engine.url, data_dir=str(engine.data_dir), auto_start=False)
    pump_until(ctl, lambda: ctl.engine.status == "connected")
    job = ctl.generate({"prompt": "a blue frog", "method": "sds"})
    notices = pump_until(ctl, lambda: job.final)
    assert job.state == "refused" and job.id is None
    assert "unknown word(s) 'frog'" in job.error and "Rephrase with those words" in job.error
    assert any("'a blue frog' was not accepted" in n for n in notices)


def test_no_engine_and_no_way_to_start_one(make_controller, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TEXT3D_PYTHON", raising=False)
    url = f"http://127.0.0.1:{free_port()}"
    ctl = make_controller(url=url, auto_start=True, python="")
    with pytest.raises(EngineError, match="no Python is set for the engine"):
        ctl.generate({"prompt": "a red cube"})
    (job,) = ctl.jobs.values()
    assert job.state == "failed" and "Auto-start ▸ Python" in job.error
    pump_until(ctl, lambda: ctl.engine.message.startswith("No engine answers"))
    assert ctl.engine.status == "not running"
    assert "Set the engine's Python in the add-on preferences" in ctl.engine.message


def test_a_crash_while_starting_shows_the_engines_last_words(make_controller, tmp_path: Path):
    fake = tmp_path / "fake_python"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named engine' >&2\nexit 3\n")
    fake.chmod(0o755)
    ctl = make_controller(url=f"http://127.0.0.1:{free_port()}", auto_start=True, python=str(fake))
    job = ctl.generate({"prompt": "a red cube"})
    assert job.state == "waiting" and ctl.engine.status == "starting"
    pump_until(ctl, lambda: ctl.engine.status == "crashed")
    assert "The engine exited with code 3" in ctl.engine.message
    assert "No module named engine" in ctl.engine.message
    assert job.state == "waiting"  # held: sent once an engine answers (after Restart)
    ctl.cancel(job.key)
    assert job.state == "cancelled" and "before it was sent" in job.message


def test_engine_process_refusals_and_exit_descriptions(tmp_path: Path):
    assert is_loopback_url("http://127.0.0.1:8765") and is_loopback_url("http://localhost:1")
    assert is_loopback_url("http://[::1]:8765") and not is_loopback_url("http://10.0.0.2:8765")
    assert not is_loopback_url("https://127.0.0.1:1")
    with pytest.raises(ValueError, match="only starts engines on this computer"):
        EngineProcess(sys.executable, "http://example.org:8765", tmp_path / "log")
    with pytest.raises(ValueError, match="does not exist"):
        EngineProcess(str(tmp_path / "nope"), "http://127.0.0.1:1", tmp_path / "log").start()
    assert describe_exit(-9) == "was killed by SIGKILL" and describe_exit(2) == "exited with code 2"
    assert describe_exit(None) == "is still running"
