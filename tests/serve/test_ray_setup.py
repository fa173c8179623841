"""A Ray set-up that cannot work is one line naming the problem and the fix, exit code 2, before the server
listens — never a hang — and the jobs waiting in the data folder are kept for the next start."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest

from tests.engine_server import REPO, child_env, free_port
from tests.serve.conftest import Server, job_request


def _serve(data: Path, *args: str, cwd: Path = REPO, timeout: float = 180) -> tuple[int, str, float]:
    """Run ``python -m engine.serve`` to its exit: (code, its error line, seconds)."""
    cmd = [sys.executable, "-m", "engine.serve", "--port", "0", "--data-dir", str(data), *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=timeout)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode != 0, f"the server started:\n{r.stdout[-2000:]}"
    assert len(errors) == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r.returncode, errors[0], time.monotonic() - t0


@pytest.fixture(scope="module")
def data_with_a_queued_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder holding one job that waits in the queue (accepted by a server that ran nothing)."""
    data = tmp_path_factory.mktemp("ray_setup") / "data"
    s = Server(data, "--workers", "0")
    job_id = s.submit(job_request(steps=10))
    assert s.stop() == 0
    return data, job_id


def _still_queued(data: Path, job_id: str) -> None:
    status = json.loads((data / "jobs" / job_id / "status.json").read_text())
    assert status["state"] == "queued", status


def test_flags_that_need_the_ray_runner(tmp_path):
    code, line, _ = _serve(tmp_path / "d", "--ray-address", "auto")
    assert code == 2 and "--ray-address needs --runner ray" in line
    code, line, _ = _serve(tmp_path / "d", "--runner", "ray", "--ray-runtime-env", "{nope")
    assert code == 2 and "--ray-runtime-env is not JSON" in line


def test_unreachable_address(data_with_a_queued_job):
    data, job_id = data_with_a_queued_job
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    code, line, seconds = _serve(data, "--runner", "ray", "--ray-address", address)
    assert code == 2, line
    assert f"cannot reach the Ray cluster at {address}" in line and "ray start --head" in line, line
    assert seconds < 30, f"took {seconds:.0f} s to say so"
    _still_queued(data, job_id)


def test_no_room_for_the_workers(data_with_a_queued_job):
    data, job_id = data_with_a_queued_job
    code, line, _ = _serve(data, "--runner", "ray", "--ray-num-cpus", "1", "--workers", "2")
    assert code == 2, line
    assert "2 CPU workers of 1 CPU(s) each do not fit the Ray cluster (1 CPUs)" in line, line
    assert "lower --workers" in line
    code, line, _ = _serve(data, "--runner", "ray", "--ray-num-cpus", "1", "--device", "cuda")
    assert code == 2 and "the Ray cluster has no GPU" in line, line
    _still_queued(data, job_id)


def test_workers_without_the_engine_package(data_with_a_queued_job, tmp_path):
    """The actors run in a Python that has every dependency but not this package, as on a node where it was
    never installed. (The server runs from outside the repository: Ray puts its working folder first on a
    local worker's sys.path, which would find the engine there.)"""
    data, job_id = data_with_a_queued_job
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    (site_packages,) = bare.glob("lib/python*/site-packages")
    # A path line, not a site folder: the packages of the test's environment without its editable engine.
    (site_packages / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = json.dumps({"py_executable": str(bare / "bin" / "python")})
    args = ("--runner", "ray", "--ray-num-cpus", "1", "--ray-runtime-env", env, "--ray-start-timeout", "60")
    code, line, _ = _serve(data, *args, cwd=tmp_path)
    assert code == 2, line
    assert "the Ray workers cannot import the engine (ModuleNotFoundError: No module named 'engine')" in line
    assert "install this package on every node" in line
    _still_queued(data, job_id)
