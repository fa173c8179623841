"""Auth, validation and limits: each bad request gets the right 4xx with a readable JSON message, and the
server stays healthy."""

from __future__ import annotations

import stat

import httpx

from engine.config import PRESETS
from engine.guidance import METHODS
from tests.serve.conftest import Server, job_request


def _error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text
    return body["error"]


def test_health_needs_no_token(idle_server: Server):
    h = httpx.get(idle_server.url + "/v1/health").json()
    assert h["status"] == "ok" and h["version"] and h["device"]
    assert "builtin" in h["priors"]
    # The menus of a client come from here: every registered method, in the registry's order, described.
    assert [m["name"] for m in h["methods"]] == list(METHODS)
    assert all(m["label"] and m["summary"] for m in h["methods"])
    assert [p["name"] for p in h["presets"]] == list(PRESETS)
    assert h["workers"] == 0 and h["limits"]["queue_size"] == 3


def test_token_file_is_private(idle_server: Server):
    mode = stat.S_IMODE((idle_server.data_dir / "token").stat().st_mode)
    assert mode == 0o600
    assert len(idle_server.token) >= 32


def test_auth(idle_server: Server):
    url = idle_server.url
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": ""},
    ):
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/" + "0" * 32)):
            r = httpx.request(method, url + path, headers=headers, json=job_request())
            assert "token" in _error(r, 401)
            assert r.headers["www-authenticate"] == "Bearer"
    assert idle_server.client.get("/v1/jobs").status_code == 200


def test_validation_and_limits(idle_server: Server):
    c = idle_server.client
    assert "larger than" in _error(c.post("/v1/jobs", json={"prompt": "a red cube " * 20000}), 413)
    big = b'{"prompt": "' + b"a" * 100_000 + b'"}'
    chunked = c.post("/v1/jobs", content=iter([big[i : i + 8192] for i in range(0, len(big), 8192)]))
    assert "larger than" in _error(chunked, 413)
    assert "prompt" in _error(c.post("/v1/jobs", json={"prompt": "a" * 10_000}), 422)
    assert "method" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "method": "magic"}), 422)
    assert "steps" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "steps": -5}), 422)
    assert "steps" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "steps": 10**9}), 422)
    assert "variants" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "variants": 99}), 422)
    assert "seeds" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "seeds": list(range(40))}), 422)
    assert "texture_size" in _error(
        c.post("/v1/jobs", json={"prompt": "a red cube", "texture_size": 100000}), 422
    )
    assert "dog" in _error(c.post("/v1/jobs", json={"prompt": "a red dog"}), 422)  # the prior's vocabulary
    assert "empty" in _error(c.post("/v1/jobs", json={"prompt": "   "}), 422)
    assert "unknown option" in _error(c.post("/v1/jobs", json=job_request(options={"train.nope": 1})), 422)
    assert "integer" in _error(c.post("/v1/jobs", json=job_request(options={"train.render_size": "x"})), 422)
    assert "field.grid.log2_hashmap_size must be in [1, 26]" in _error(
        c.post("/v1/jobs", json=job_request(options={"field.grid.log2_hashmap_size": 40})), 422
    )
    assert "field.grid.log2_hashmap_size = 25 is outside this server's limits [8, 24]" in _error(
        c.post("/v1/jobs", json=job_request(options={"field.grid.log2_hashmap_size": 25})), 422
    )
    assert "device" in _error(c.post("/v1/jobs", json=job_request(options={"train.device": "cuda"})), 422)
    assert "twice" in _error(c.post("/v1/jobs", json=job_request(options={"train.steps": 5})), 422)
    assert "prior" in _error(
        c.post("/v1/jobs", json={"prompt": "a red cube", "prior": "/no/such/folder"}), 422
    )
    assert "JSON" in _error(
        c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    assert "extra" in _error(c.post("/v1/jobs", json={"prompt": "a red cube", "colour": "red"}), 422).lower()


def test_job_ids_never_touch_the_filesystem(idle_server: Server):
    c = idle_server.client
    bad = [
        "..%2F..%2Fetc",
        "..",
        "%2e%2e",
        "..%2F..%2Fetc%2Fpasswd",
        "ABCDEF" * 6,
        "0" * 31,
        "0" * 33,
        "x;ls",
    ]
    for job_id in bad:
        for suffix in ("", "/events", "/result", "/cancel"):
            method = "POST" if suffix == "/cancel" else "GET"
            r = c.request(method, f"/v1/jobs/{job_id}{suffix}")
            assert r.status_code in (404, 405, 422), (job_id, suffix, r.status_code, r.text)
            _error(r, r.status_code)
    assert "no job" in _error(c.get("/v1/jobs/" + "0" * 32), 404)
    assert idle_server.healthy()


def test_a_resent_submission_is_the_same_job(idle_server: Server):
    """A client whose connection dropped after the server accepted its job sends it again with the same
    Idempotency-Key: it gets that job back, not a second one."""
    c = idle_server.client
    before = len(c.get("/v1/jobs").json()["jobs"])
    key = {"Idempotency-Key": "b1e4f0c2-resend-test"}
    first = c.post("/v1/jobs", json=job_request(), headers=key)
    again = c.post("/v1/jobs", json=job_request(), headers=key)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"
    assert len(c.get("/v1/jobs").json()["jobs"]) == before + 1
    other = c.post("/v1/jobs", json=job_request(), headers={"Idempotency-Key": "another"})
    assert other.json()["id"] != first.json()["id"]
    for r in (first, other):  # free the queue for the next test
        assert c.post(f"/v1/jobs/{r.json()['id']}/cancel").status_code == 200


def test_queue_full_is_429(idle_server: Server):
    c = idle_server.client
    codes = [c.post("/v1/jobs", json=job_request()).status_code for _ in range(5)]
    assert codes.count(429) >= 2 and set(codes) <= {202, 429}, codes
    assert "queue is full" in _error(c.post("/v1/jobs", json=job_request()), 429)
    assert httpx.get(idle_server.url + "/v1/health").json()["queue_length"] == 3
    # Cancelling a queued job frees its place at once.
    queued = [j for j in c.get("/v1/jobs").json()["jobs"] if j["state"] == "queued"]
    r = c.post(f"/v1/jobs/{queued[0]['id']}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert c.post("/v1/jobs", json=job_request()).status_code == 202
    assert idle_server.healthy()
