"""A Ray set-up that cannot work is one line naming the problem and the fix, exit code 2, before the server
listens — never a hang — and the jobs waiting in the data folder are kept for the next start."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import time
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.engine_server import REPO, child_env, free_port
from tests.serve.conftest import RAY_HEAD_CPUS, job_request, ray_join_env


def _serve(data: Path, *args: str, cwd: Path = REPO, timeout: float = 180) -> tuple[int, str, float]:
    """Run ``python -m engine.serve`` to its exit: (code, its error line, seconds)."""
    cmd = [sys.executable, "-m", "engine.serve", "--port", "0", "--data-dir", str(data), *args]
    env = child_env(**ray_join_env()) if "--ray-address" in args else child_env()  # as Server does
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
    from fastapi.testclient import TestClient

    from engine.serve.app import ServerSettings, create_app

    # The server's own app in this process (a subprocess server would take seconds to start and stop).
    data = tmp_path_factory.mktemp("ray_setup") / "data"
    with TestClient(create_app(ServerSettings(data_dir=data, workers=0))) as client:
        token = (data / "token").read_text().strip()
        r = client.post("/v1/jobs", json=job_request(steps=10), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 202, r.text
    return data, r.json()["id"]


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
    join = ("--runner", "ray", "--ray-address", ray_head)
    with ThreadPoolExecutor(2) as pool:  # both fail before they touch the data folder; seconds each
        too_many = pool.submit(_serve, data, *join, "--workers", str(n), "--ray-cpus-per-worker", "2")
        no_gpu = pool.submit(_serve, data, *join, "--device", "cuda")
        (code, line, _), (gpu_code, gpu_line, _) = too_many.result(), no_gpu.result()
    assert code == 2, line
    assert f"{n} CPU workers of 2 CPU(s) each do not fit the Ray cluster ({RAY_HEAD_CPUS} CPUs)" in line, line
    assert "lower --workers" in line
    assert gpu_code == 2 and "the Ray cluster has no GPU" in gpu_line, gpu_line
    _still_queued(data, job_id)


def _bare_python(tmp_path: Path) -> str:
    """A Python with every dependency of the test's environment but not this package, as on a node where it
    was never installed: a path line, not a site folder, so the editable engine's finder is not loaded."""
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)
    (site_packages,) = bare.glob("lib/python*/site-packages")
    (site_packages / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return json.dumps({"py_executable": str(bare / "bin" / "python")})


def test_workers_without_the_engine_package(data_with_a_queued_job, tmp_path, ray_head):
    """Actors that run in a Python without the engine get the worker's own import error, on a local Ray
    the server starts and on a cluster joined by address (the tests' Ray head, where the shared Ray
    server's actor already holds 2 of its CPUs: a worker that asked for the whole node would wait for room,
    and time out with the "no free CPU share" message, correctly). The servers run from outside the
    repository: Ray puts its working folder first on a local worker's sys.path, which would find the engine
    there. Both at once: each takes seconds, and they share nothing but the data folder they fail before
    touching."""
    data, job_id = data_with_a_queued_job
    env = _bare_python(tmp_path)
    local = ("--runner", "ray", "--ray-num-cpus", "1")
    joined = ("--runner", "ray", "--ray-address", ray_head, "--ray-cpus-per-worker", "1")
    bare = ("--ray-runtime-env", env, "--ray-start-timeout", "60")
    with ThreadPoolExecutor(2) as pool:
        runs = {
            name: pool.submit(_serve, data, *args, *bare, cwd=tmp_path)
            for name, args in (("local", local), ("joined", joined))
        }
        results = {name: run.result() for name, run in runs.items()}
    for name, (code, line, _) in results.items():
        assert code == 2, (name, line)
        missing = "the Ray workers cannot import the engine (ModuleNotFoundError: No module named 'engine')"
        assert missing in line, (name, line)
        assert "install this package on every node" in line, (name, line)
    _still_queued(data, job_id)
