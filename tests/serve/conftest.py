"""The real server as a subprocess on a free loopback port with a temporary data folder, and an SSE client.

Every test talks HTTP to ``python -m engine.serve``; nothing is imported in-process, so signals, restarts
and the command line are exercised as a user would. The shared servers come in both runners (worker
threads, and Ray actors on a local Ray of 2 CPUs), so every test that uses them runs against both.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.engine_server import FAST_OPTIONS, EngineProcess

RUNNER_ARGS = {
    "thread": (),
    "ray": ("--runner", "ray", "--ray-num-cpus", "2"),
}
"""Command-line flags per runner. Ray: a local Ray of 2 CPUs (this machine's), one CPU actor of 2 CPUs by
default, so a job runs with the thread runner's torch thread count."""

RUNNERS = list(RUNNER_ARGS)


def job_request(steps: int = 30, prompt: str = "a red cube", **extra) -> dict:
    return {"prompt": prompt, "steps": steps, "texture_size": 256, "options": dict(FAST_OPTIONS), **extra}


class Server(EngineProcess):
    """A running ``python -m engine.serve`` and an HTTP client with its token."""

    def __init__(self, data_dir: Path, *args: str, startup_timeout: float = 120.0):
        super().__init__(data_dir, *args, startup_timeout=startup_timeout)
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
    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.client.close()
        return super().stop(sig, timeout)

    def kill(self) -> None:
        self.client.close()
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
def runner(request: pytest.FixtureRequest) -> str:
    """Each runner in turn (the tests that start their own servers use it)."""
    return request.param


@pytest.fixture(scope="session", params=RUNNERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server (one worker) shared by the tests that run jobs one after another."""
    s = Server(tmp_path_factory.mktemp(f"serve_{request.param}") / "data", *RUNNER_ARGS[request.param])
    yield s
    s.stop()


@pytest.fixture(scope="session", params=RUNNERS)
def idle_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that accepts jobs but runs none (--workers 0), with a queue of 3: for limits and fuzzing."""
    data = tmp_path_factory.mktemp(f"serve_idle_{request.param}") / "data"
    s = Server(data, "--workers", "0", "--queue-size", "3", *RUNNER_ARGS[request.param])
    yield s
    s.stop()
