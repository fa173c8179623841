"""The real server as a subprocess on a free loopback port with a temporary data folder, and an SSE client.

Every test talks HTTP to ``python -m engine.serve``; nothing is imported in-process, so signals, restarts
and the command line are exercised as a user would. The shared servers come in both runners (worker
threads, and Ray actors on the session's one Ray head), so every test that uses them runs against both.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine_server import FAST_OPTIONS, EngineProcess, child_env, free_port

RUNNERS = ("thread", "ray")
"""Every runner the shared servers (and the tests that start their own) run against."""

WORKER_THREADS = 2
"""Torch threads of a job on either runner in the shared servers: a Ray actor reserves this many CPUs (and
runs as many threads), the thread server runs with ``OMP_NUM_THREADS`` set to it; so the two give the same
bytes (tests/serve/test_ray_runner.py) on any machine. 2: the cores of the machines the suite runs on."""

RAY_HEAD_CPUS = 4 * WORKER_THREADS
"""Logical CPUs of the session's Ray head: room for the actors of every Ray server alive at once. Ray's
CPUs are a reservation count, not cores."""

RAY_HEAD_TOKEN = secrets.token_hex(32)
"""The session's Ray head's authentication token (Ray 2.60 authenticates by token by default). The tests'
own, given to the head and to everything that joins it in the environment: not ``~/.ray/auth_token``, which
a fresh machine does not have (``ray start`` does not make one) and a developer's own clusters may use."""


def ray_join_env() -> dict[str, str]:
    """Environment for a process that starts or joins the session's Ray head by address."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_HEAD_TOKEN}


def runner_args(runner: str, request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Command-line flags for a server on ``runner``. Ray servers join the session's one Ray head
    (:func:`ray_head`) with ``--ray-address``, the multi-machine path of docs/RAY.md; a server that starts
    its own local Ray is tested by tests/serve/test_ray_runner.py."""
    if runner == "thread":
        return ()
    address = request.getfixturevalue("ray_head")
    return ("--runner", "ray", "--ray-address", address, "--ray-cpus-per-worker", str(WORKER_THREADS))


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Ray head for the session (``ray start --head --block``), started the first time a Ray server
    needs it; its address. Starting a local Ray in every server took most of the Ray tests' time (Ray's
    GCS, raylet and workers starting and stopping for each of ~8 servers); joining one is a connection."""
    log_path = tmp_path_factory.mktemp("ray_head") / "ray_head.log"
    port = free_port()
    address = f"127.0.0.1:{port}"
    ray = Path(sys.executable).with_name("ray")
    cmd = [str(ray), "start", "--head", "--block", "--port", str(port), "--num-cpus", str(RAY_HEAD_CPUS)]
    cmd += ["--include-dashboard", "false", "--disable-usage-stats", "--node-ip-address", "127.0.0.1"]
    with open(log_path, "w") as log:
        # Not from the repository: a node's workers start in the folder `ray start` ran in and find a package
        # there, which would hide a node without the engine installed (test_ray_setup's bare workers).
        proc = subprocess.Popen(
            cmd,
            cwd=log_path.parent,
            env=child_env(**ray_join_env()),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_group(proc)
            pytest.fail(f"the tests' Ray head did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    yield address
    _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL to the head's process group: ``ray start`` and every process of its cluster (GCS, raylet,
    agents, workers) are in it (``start_new_session``). Not SIGTERM: ``ray start --block`` takes ~33 s to
    shut an idle cluster down that way, and this cluster holds nothing worth a clean shutdown (every server
    that used it has stopped before the session fixture ends)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def job_request(steps: int = 30, prompt: str = "a red cube", **extra) -> dict:
    return {"prompt": prompt, "steps": steps, "texture_size": 256, "options": dict(FAST_OPTIONS), **extra}


class Server(EngineProcess):
    """A running ``python -m engine.serve`` and an HTTP client with its token."""

    def __init__(
        self, data_dir: Path, *args: str, startup_timeout: float = 120.0, env: dict[str, str] | None = None
    ):
        env = dict(env or {})
        if "--ray-address" in args:  # joining by address uses Ray's token authentication (docs/RAY.md)
            env.update(ray_join_env())
        super().__init__(data_dir, *args, startup_timeout=startup_timeout, env=env)
        self.token = (data_dir / "token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.client = httpx.Client(base_url=self.url, headers=self.headers, timeout=60)

    # ------------------------------------------------------------------ requests
    def submit(self, body: dict) -> str:
        r = self.client.post("/v1/jobs", json=body)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def job(self, job_id: str) -> dict:
        r = self.client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def healthy(self) -> bool:
        return self.proc.poll() is None and httpx.get(self.url + "/v1/health", timeout=10).status_code == 200

    def events(self, job_id: str, last_event_id: int | None = None, timeout: float = 180) -> Iterator[dict]:
        """Parsed SSE events until the server ends the stream."""
        return sse_events(self.url, self.token, job_id, last_event_id, timeout)

    def wait_done(self, job_id: str, timeout: float = 180) -> list[dict]:
        evs = list(self.events(job_id, timeout=timeout))
        assert evs and evs[-1]["type"] == "status", evs[-3:]
        return evs

    # ------------------------------------------------------------------ stopping
    def _close_client(self) -> None:
        if hasattr(self, "client"):  # not yet made when a server that never became healthy is killed
            self.client.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self._close_client()
        return super().stop(sig, timeout)

    def kill(self) -> None:
        self._close_client()
        super().kill()
        if "local Ray started by this server" in self.log():
            _end_orphaned_ray_processes(self.proc.pid)


def _end_orphaned_ray_processes(server_pid: int, grace: float = 2.0) -> None:
    """After a SIGKILL of a server that started its own local Ray, Ray 2.60's dashboard and runtime-env
    agents of that cluster hang on (they try to report to the dead GCS; docs/RAY.md). End them so that the
    tests leave nothing behind: they are found by their log files in the Ray session folder, which Ray
    names after the process that started it (``/tmp/ray/session_<time>_<server pid>``), so only this
    server's are touched."""
    session = re.compile(rf"/session_[^/]*_{server_pid}/")
    time.sleep(grace)  # what Ray's own reaper ends goes first
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(session.search(os.readlink(fd)) for fd in (proc / "fd").iterdir()):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to look at
            continue


def sse_events(
    url: str, token: str, job_id: str, last_event_id: int | None = None, timeout: float = 180
) -> Iterator[dict]:
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with httpx.stream(
        "GET", f"{url}/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(10, read=timeout)
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in r.iter_lines():
            if line == "":
                if "data" in fields:
                    yield {
                        "id": int(fields["id"]),
                        "type": fields["event"],
                        "data": json.loads(fields["data"]),
                    }
                fields = {}
            elif not line.startswith(":"):  # ":" starts a comment (keep-alive)
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value


@pytest.fixture(params=RUNNERS)
def runner_flags(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Each runner's server flags in turn (the tests that start their own servers use it)."""
    return runner_args(request.param, request)


def _shared_server(runner: str, request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> Server:
    env = {"OMP_NUM_THREADS": str(WORKER_THREADS)} if runner == "thread" else None
    return Server(factory.mktemp(f"serve_{runner}") / "data", *runner_args(runner, request), env=env)


@pytest.fixture(scope="session")
def thread_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The shared server on the thread runner (one worker, ``WORKER_THREADS`` torch threads)."""
    s = _shared_server("thread", request, tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def ray_head_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The shared server on the Ray runner: one actor of ``WORKER_THREADS`` CPUs (and torch threads) on the
    session's Ray head."""
    s = _shared_server("ray", request, tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="session", params=RUNNERS)
def server(request: pytest.FixtureRequest) -> Server:
    """One server (one worker) shared by the tests that run jobs one after another, on each runner."""
    return request.getfixturevalue({"thread": "thread_server", "ray": "ray_head_server"}[request.param])


@pytest.fixture(scope="session", params=RUNNERS)
def idle_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that accepts jobs but runs none (--workers 0), with a queue of 3: for limits and fuzzing."""
    data = tmp_path_factory.mktemp(f"serve_idle_{request.param}") / "data"
    s = Server(data, "--workers", "0", "--queue-size", "3", *runner_args(request.param, request))
    yield s
    s.stop()
