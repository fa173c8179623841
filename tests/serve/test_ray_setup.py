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
from tests.serve.conftest import RAY_HEAD_CPUS, Server, job_request


def _serve(data: Path, *args: str, cwd: Path = REPO, timeout: float = 180) -> tuple[int, str, float]:
    """Run ``python -m engine.serve`` to its exit: (code, its error line, seconds)."""
    cmd = [sys.executable, "-m", "engine.serve", "--port", "0", "--data-dir", str(data), *args]
    env = child_env(RAY_AUTH_MODE="token") if "--ray-address" in args else child_env()  # as Server does
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
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


def test_no_room_for_the_workers(data_with_a_queued_job, ray_head):
    """Checked against the cluster joined (the tests' Ray head, no GPU), before any actor is made."""
    data, job_id = data_with_a_queued_job
    n = RAY_HEAD_CPUS // 2 + 1  # one more 2-CPU worker than the cluster has room for
    code, line, _ = _serve(
        data, "--runner", "ray", "--ray-address", ray_head, "--workers", str(n), "--ray-cpus-per-worker", "2"
    )
    assert code == 2, line
    assert f"{n} CPU workers of 2 CPU(s) each do not fit the Ray cluster ({RAY_HEAD_CPUS} CPUs)" in line, line
    assert "lower --workers" in line
    code, line, _ = _serve(data, "--runner", "ray", "--ray-address", ray_head, "--device", "cuda")
    assert code == 2 and "the Ray cluster has no GPU" in line, line
    _still_queued(data, job_id)


def _bare_python(tmp_path: Path) -> str:
    """A Python with every dependency of the test's environment but not this package, as on a node where it
    was never installed: a path line, not a site folder, so the editable engine's finder is not loaded."""
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    (site_packages,) = bare.glob("lib/python*/site-packages")
    (site_packages / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return json.dumps({"py_executable": str(bare / "bin" / "python")})


def test_workers_without_the_engine_package(data_with_a_queued_job, tmp_path):
    """A local Ray whose actors run in a Python without the engine: the worker's own import error. (The
    server runs from outside the repository: Ray puts its working folder first on a local worker's sys.path,
    which would find the engine there.)"""
    data, job_id = data_with_a_queued_job
    env = _bare_python(tmp_path)
    args = ("--runner", "ray", "--ray-num-cpus", "1", "--ray-runtime-env", env, "--ray-start-timeout", "60")
    code, line, _ = _serve(data, *args, cwd=tmp_path)
    assert code == 2, line
    assert "the Ray workers cannot import the engine (ModuleNotFoundError: No module named 'engine')" in line
    assert "install this package on every node" in line
    _still_queued(data, job_id)


def test_workers_without_the_engine_package_on_a_joined_cluster(data_with_a_queued_job, tmp_path, ray_head):
    """The same on a cluster joined by address (the tests' Ray head, where the shared Ray server's actor
    already holds 2 of its CPUs: a worker that asked for the whole node would wait for room, and time out with
    the "no free CPU share" message, correctly)."""
    data, job_id = data_with_a_queued_job
    env = _bare_python(tmp_path)
    args = ("--runner", "ray", "--ray-address", ray_head, "--ray-cpus-per-worker", "1")
    args += ("--ray-runtime-env", env, "--ray-start-timeout", "60")
    code, line, _ = _serve(data, *args, cwd=tmp_path)
    assert code == 2, line
    assert "the Ray workers cannot import the engine (ModuleNotFoundError: No module named 'engine')" in line
    assert "install this package on every node" in line, line
    _still_queued(data, job_id)


def test_a_start_timeout_blames_resources_only_when_the_cluster_is_full():
    """Which of the two timeout messages a worker that never started gets: "no free CPU share" only when
    the free resources could not hold it; otherwise the cluster had room and the node's Python is blamed."""
    from engine.serve.ray_runner import _has_room, _Plan

    cpu = _Plan(1, {"num_cpus": 2.0}, "cpu", 2, "CPU actors")
    gpu = _Plan(1, {"num_gpus": 1, "num_cpus": 1.0}, "cuda", 1, "GPU actors")
    assert _has_room({"CPU": 6.0}, cpu) and not _has_room({"CPU": 1.0}, cpu)
    assert _has_room({"CPU": 1.0, "GPU": 1.0}, gpu) and not _has_room({"CPU": 8.0}, gpu)
