"""End to end with the built-in prior: submit → events (with previews) → a .glb that passes glTF-Validator."""

from __future__ import annotations

import base64
import io

from PIL import Image

from tests.export.gltf_validator import validated
from tests.serve.conftest import Server, job_request


def test_submit_stream_download(server: Server, tmp_path):
    r = server.client.post("/v1/jobs", json=job_request(steps=30))
    assert r.status_code == 202, r.text
    accepted = r.json()
    job_id = accepted["id"]
    assert accepted["queue_position"] >= 1 and r.headers["location"] == f"/v1/jobs/{job_id}"

    events = server.wait_done(job_id)
    types = [e["type"] for e in events]
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "event ids must increase"
    assert events[-1]["data"]["state"] == "done", events[-3:]
    assert types.count("progress") >= 1 and types.count("result") == 1
    previews = [e["data"] for e in events if e["type"] == "preview"]
    assert previews, "expected at least one preview (train.preview_every defaults to 25 on the server)"
    img = Image.open(io.BytesIO(base64.b64decode(previews[-1]["png"])))
    assert img.format == "PNG" and img.size == (previews[-1]["size"],) * 2
    progress = [e["data"] for e in events if e["type"] == "progress"]
    assert progress[-1]["step"] == progress[-1]["total"] == 30
    assert {"loss", "its", "eta_s", "variant", "seed"} <= set(progress[-1])

    info = server.job(job_id)
    assert info["state"] == "done" and info["config"]["train"]["steps"] == 30
    assert info["config"]["export"]["texture_size"] == 256 and info["request"]["prompt"] == "a red cube"
    (result,) = info["results"]
    assert result["faces"] > 0

    glb = server.client.get(result["glb"])
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert "a_red_cube_s0.glb" in glb.headers["content-disposition"]
    path = tmp_path / "asset.glb"
    path.write_bytes(glb.content)
    report = validated(path)
    assert report["info"]["hasTextures"]

    for kind in ("texture", "turntable"):
        r = server.client.get(result[kind])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        Image.open(io.BytesIO(r.content)).verify()

    listed = server.client.get("/v1/jobs").json()["jobs"]
    assert job_id in [j["id"] for j in listed]

    # A client arriving after the end gets the whole history, and one resuming mid-way the rest.
    assert [e["id"] for e in server.events(job_id)] == ids
    middle = ids[len(ids) // 2]
    assert [e["id"] for e in server.events(job_id, last_event_id=middle)] == [i for i in ids if i > middle]
