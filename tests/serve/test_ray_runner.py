"""The Ray runner on a local Ray of 2 CPUs that the server starts itself, with two CPU actors (``--runner
ray --workers 2``): jobs and a job's variants run in parallel in separate actor processes, a killed actor
loses nothing; and the assets are the thread runner's to the bit (the shared servers of conftest.py).

The server is the real ``python -m engine.serve`` subprocess; the test process joins its Ray cluster only
to kill an actor, as a crashed worker process would die.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.engine_server import child_env
from tests.export.gltf_validator import validated
from tests.serve.conftest import Server, job_request

KILL_WORKER = """
import json, sys, ray
address, namespace, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level="ERROR")
actors = [ray.get_actor(f"worker-{k}") for k in range(n)]
print("joined", flush=True)
job_id = sys.stdin.readline().strip()
infos = ray.get([a.info.remote() for a in actors])
(k,) = [k for k, i in enumerate(infos) if i["job"] == job_id]
ray.kill(actors[k])
print(json.dumps(infos), flush=True)
"""
"""Joins the server's cluster as a second driver, says ``joined``, then reads a job id from stdin,
ray.kill()s the actor running that job and prints every worker's info (from before the kill). It joins
before the job is far enough to kill (joining takes seconds), so the kill lands within a step or two of the
moment the test picks. A fresh process: RAY_AUTH_MODE must be in the environment before Ray reads its
configuration."""


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two CPU actors of 1 CPU each (so 1 torch thread each) on a local Ray of 2 CPUs."""
    s = Server(
        tmp_path_factory.mktemp("ray") / "data", "--runner", "ray", "--ray-num-cpus", "2", "--workers", "2"
    )
    yield s
    s.stop()


def _log_events(server: Server, job_id: str) -> list[dict]:
    """The job's event log as the server stored it (with times)."""
    path = server.data_dir / "jobs" / job_id / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _progress_span(events: list[dict], variant: int = 0) -> tuple[float, float]:
    times = [e["time"] for e in events if e["type"] == "progress" and e["data"]["variant"] == variant]
    assert times, f"no progress events for variant {variant}"
    return min(times), max(times)


def _records(server: Server, job_id: str) -> list[dict]:
    """run.json of every variant (the worker that made it is recorded in it)."""
    root = server.data_dir / "jobs" / job_id / "run"
    return [json.loads(p.read_text()) for p in sorted(root.rglob("run.json"))]


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_two_jobs_run_at_once_in_two_actor_processes(ray_server: Server):
    first = ray_server.submit(job_request(steps=25))
    second = ray_server.submit(job_request(steps=25, prompt="a blue sphere"))
    # Both start at once: neither waits in the queue behind the other.
    assert ray_server.job(second)["queue_position"] in (0, 1)
    for job_id in (first, second):
        assert ray_server.wait_done(job_id)[-1]["data"]["state"] == "done"
    spans = [_progress_span(_log_events(ray_server, j)) for j in (first, second)]
    assert _overlap(*spans), f"the jobs ran one after the other: {spans}"
    (rec1,), (rec2,) = _records(ray_server, first), _records(ray_server, second)
    pids = {rec1["worker"]["pid"], rec2["worker"]["pid"]}
    assert len(pids) == 2 and ray_server.proc.pid not in pids, (rec1["worker"], rec2["worker"])


def test_variants_fan_out_and_arrive_in_one_job(ray_server: Server):
    job_id = ray_server.submit(job_request(steps=20, variants=3, seed=4))
    events = ray_server.wait_done(job_id)
    assert events[-1]["data"] == {"state": "done", "final": True, "message": "finished 3 assets"}
    info = ray_server.job(job_id)
    assert [r["variant"] for r in info["results"]] == [0, 1, 2]
    assert [r["seed"] for r in info["results"]] == [4, 5, 6]
    logged = _log_events(ray_server, job_id)
    assert _overlap(_progress_span(logged, 0), _progress_span(logged, 1)), "variants 0 and 1 did not overlap"
    assert len({r["worker"]["pid"] for r in _records(ray_server, job_id)}) == 2
    for r in info["results"]:
        glb = ray_server.client.get(r["glb"])
        assert glb.status_code == 200 and glb.content[:4] == b"glTF"
        assert f"_s{r['seed']}.glb" in glb.headers["content-disposition"]
    # The files are in the server's job folder (the store), not only on the workers.
    assert sorted(p.name for p in (ray_server.data_dir / "jobs" / job_id).glob("*.glb")) == [
        "asset_s4.glb",
        "asset_s5.glb",
        "asset_s6.glb",
    ]


def _cluster(server: Server) -> tuple[str, str]:
    """(GCS address, namespace) from the line the server printed on start."""
    m = re.search(r"at (\S+:\d+), namespace (\S+)", server.log())
    assert m, server.log()
    return m.group(1), m.group(2)


def _wait_step(server: Server, job_id: str, step: int) -> None:
    for ev in server.events(job_id):
        if ev["type"] == "progress" and ev["data"]["step"] >= step:
            return
    raise AssertionError(f"job {job_id} ended before step {step}")


def test_killed_actor_resumes_from_its_checkpoint_on_a_fresh_actor(ray_server: Server, tmp_path):
    # The other worker is busy, so the job can only continue on the actor that replaces the killed one.
    blocker = ray_server.submit(job_request(steps=5000, prompt="a red cube"))
    _wait_step(ray_server, blocker, 1)
    address, namespace = _cluster(ray_server)
    # The cluster the server started uses Ray's default token authentication (same user, same token file).
    killer = subprocess.Popen(
        [sys.executable, "-c", KILL_WORKER, address, namespace, "2"],
        env=child_env(RAY_AUTH_MODE="token"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert killer.stdout.readline().strip() == "joined", killer.communicate(timeout=60)[1][-3000:]
        # Checkpoints every 5 steps: killed after step 12, it resumes from step 10 or later, with most of
        # its 30 steps still to run.
        job_id = ray_server.submit(job_request(steps=30, prompt="a green cone"))
        _wait_step(ray_server, job_id, 12)
        out, err = killer.communicate(job_id + "\n", timeout=120)
    finally:
        killer.kill()
    assert killer.returncode == 0, err[-3000:]
    infos = json.loads(out.strip().splitlines()[-1])
    pid_of = {i["job"]: i["pid"] for i in infos}

    events = []
    for ev in ray_server.events(job_id, timeout=300):
        events.append(ev)
        if ev["type"] == "status" and "resumed_from_step" in ev["data"]:
            # Resumed on the replacement: the blocker has done its part (its CPU is the job's from here).
            assert ray_server.client.post(f"/v1/jobs/{blocker}/cancel").status_code == 202
    assert events[-1]["data"]["state"] == "done", events[-3:]
    lost = [e["data"] for e in events if e["type"] == "status" and "lost its worker" in e["data"]["message"]]
    assert len(lost) == 1 and lost[0]["checkpoint_step"] >= 10, lost
    k = next(k for k, e in enumerate(events) if e["type"] == "status" and "resumed_from_step" in e["data"])
    resumed = events[k]["data"]
    assert resumed["resumed_from_step"] == lost[0]["checkpoint_step"], (resumed, lost)
    after = [e["data"]["step"] for e in events[k:] if e["type"] == "progress"]
    assert after and after[0] > resumed["resumed_from_step"], after[:3]  # went on, did not start over
    (record,) = _records(ray_server, job_id)
    assert record["worker"]["pid"] not in (pid_of[job_id], pid_of[blocker]), (record["worker"], infos)
    assert ray_server.job(blocker)["state"] == "cancelled"
    info = ray_server.job(job_id)
    glb = ray_server.client.get(info["results"][0]["glb"])
    path = tmp_path / "resumed.glb"
    path.write_bytes(glb.content)
    validated(path)  # no validator errors
    assert ray_server.healthy() and ray_server.client.get("/v1/health").json()["workers"] == 2


def test_thread_and_ray_runners_give_identical_assets(thread_server: Server, ray_head_server: Server):
    """Same request and seed, same torch thread count (the shared servers: ``WORKER_THREADS`` each): the
    same bytes."""
    import numpy as np
    import trimesh

    body = job_request(steps=12, seed=3)
    servers = {"thread": thread_server, "ray": ray_head_server}
    jobs = {
        name: server.submit(body) for name, server in servers.items()
    }  # at once: the bytes do not depend on timing
    assets = {}
    for name, server in servers.items():
        assert server.wait_done(jobs[name])[-1]["data"]["state"] == "done"
        (result,) = server.job(jobs[name])["results"]
        assets[name] = server.client.get(result["glb"]).content
    meshes = {
        k: trimesh.load(io.BytesIO(v), file_type="glb", force="mesh", process=False)
        for k, v in assets.items()
    }
    t, r = meshes["thread"], meshes["ray"]
    assert len(t.faces) > 0
    assert np.array_equal(t.vertices, r.vertices) and np.array_equal(t.faces, r.faces)
    assert assets["thread"] == assets["ray"], "same mesh, but the .glb files differ (texture or metadata)"
