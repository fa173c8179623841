"""Nothing is lost across a crash or a restart: interrupted jobs resume from their checkpoint, finished
ones stay listed and downloadable."""

from __future__ import annotations

import json
import signal

from tests.serve.conftest import Server, job_request


def _follow_until_step(server: Server, job_id: str, step: int) -> int:
    last = 0
    for ev in server.events(job_id):
        if ev["type"] == "progress" and ev["data"]["step"] >= step:
            return ev["id"]
        last = ev["id"]
    raise AssertionError(f"job ended before step {step} (last event {last})")


def _resumes_after_a_hard_kill(s2: Server, done_id: str, job_id: str, last_seen: int) -> int:
    """Checks the restart after the SIGKILL while the interrupted job goes on; returns once it has trained
    a few steps past its checkpoint (the step its progress reached)."""
    # The finished job survived the crash.
    assert s2.job(done_id)["state"] == "done"
    assert s2.client.get(f"/v1/jobs/{done_id}/result").status_code == 200
    # The interrupted one continues (a client resuming its stream gets only what it has not seen).
    resumed = None
    for k, e in enumerate(s2.events(job_id, last_event_id=last_seen, timeout=300)):
        if k == 0:
            assert e["id"] == last_seen + 1, e
        if e["type"] == "status" and "resumed_from_step" in e["data"]:
            resumed = e["data"]["resumed_from_step"]
            assert resumed >= 10, e["data"]
        elif e["type"] == "progress" and resumed is not None and e["data"]["step"] >= resumed + 4:
            return e["data"]["step"]  # training went on from the checkpoint, it did not start over
        assert not (e["type"] == "status" and e["data"]["final"]), e
    raise AssertionError(f"the stream of job {job_id} ended before it resumed and went on")


def _interrupted_at_the_step_reached(data, job_id: str, reached: int) -> int:
    status = json.loads((data / "jobs" / job_id / "status.json").read_text())
    assert status["state"] == "interrupted", status
    step_at_stop = status["progress"]["step"]
    assert step_at_stop >= reached, (status, reached)
    stop_events = [
        e["data"]
        for e in map(json.loads, (data / "jobs" / job_id / "events.jsonl").read_text().splitlines())
        if e["type"] == "status" and e["data"]["state"] == "interrupted"
    ]
    # The event tells a client where the checkpoint stands, and status.json agrees with it.
    assert stop_events[-1]["checkpoint_step"] == step_at_stop, (stop_events, status)
    return step_at_stop


def test_a_hard_kill_and_a_clean_stop_lose_nothing(tmp_path, runner_flags):
    """Two restarts of one data folder, one job through both. After a SIGKILL (no chance to checkpoint or
    mark anything) the finished job is still listed and the running one resumes from its last
    checkpoint; after a SIGTERM the running job checkpoints at the step it reached, is marked interrupted,
    and resumes from that step. (One test, three servers: each server start costs seconds, most of all
    on Ray.)"""
    data = tmp_path / "data"
    s = Server(data, *runner_flags)
    done_id = s.submit(job_request(steps=10))
    s.wait_done(done_id)
    job_id = s.submit(job_request(steps=40, prompt="a green cone"))
    last_seen = _follow_until_step(s, job_id, 12)  # checkpoints every 5 steps (FAST_OPTIONS)
    s.kill()

    s2 = Server(data, *runner_flags)
    try:
        reached = _resumes_after_a_hard_kill(s2, done_id, job_id, last_seen)
    except BaseException:
        s2.stop()
        raise
    assert s2.stop(signal.SIGTERM) == 0
    step_at_stop = _interrupted_at_the_step_reached(data, job_id, reached)

    s3 = Server(data, *runner_flags)
    try:
        events = s3.wait_done(job_id, timeout=300)
        resumed = [e["data"] for e in events if e["type"] == "status" and "resumed_from_step" in e["data"]]
        # The clean stop checkpointed at the step it reached, not at the last periodic checkpoint.
        assert resumed[-1]["resumed_from_step"] == step_at_stop, (resumed, step_at_stop)
        k = max(i for i, e in enumerate(events) if e["type"] == "status" and "resumed_from_step" in e["data"])
        after = [e["data"]["step"] for e in events[k:] if e["type"] == "progress"]
        assert after and after[0] > step_at_stop, after[:3]
        assert events[-1]["data"]["state"] == "done"
        info = s3.job(job_id)
        assert info["state"] == "done" and len(info["results"]) == 1
        assert s3.client.get(info["results"][0]["glb"]).status_code == 200
        assert {j["id"]: j["state"] for j in s3.client.get("/v1/jobs").json()["jobs"]} == {
            done_id: "done",
            job_id: "done",
        }
    finally:
        s3.stop()
