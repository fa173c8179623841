"""The add-on driving a real engine (built-in prior, tiny runs) inside real Blender: Generate → live previews
→ the textured asset imported and tagged in one undo step; Cancel; a killed engine is shown and restarted
and its job resumes; the engine started from Blender never outlives it unless asked to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from blender_addon.client import EngineClient
from tests.blender_addon.conftest import (
    FAST_OPTIONS,
    FAST_OPTIONS_TEXT,
    SESSION,
    Engine,
    blender_env,
    free_port,
    health,
    run_session,
    wait_gone,
)


def params(zip_path: Path, url: str, data_dir: Path, **extra) -> dict:
    return {
        "zip": str(zip_path),
        "url": url,
        "data_dir": str(data_dir),
        "options": FAST_OPTIONS_TEXT,
        **extra,
    }


def own_engine(tmp_path: Path, zip_path: Path, **extra) -> dict:
    """Settings for an engine the add-on starts itself (free port, own data folder)."""
    return params(zip_path, f"http://127.0.0.1:{free_port()}", tmp_path / "engine_data", **extra)


def test_generate_previews_import_and_one_undo_step(engine: Engine, extension_zip: Path, tmp_path: Path):
    r = run_session("generate", params(extension_zip, engine.url, engine.data_dir), tmp_path)

    assert r["generate"] == {"result": ["FINISHED"], "error": None}
    assert r["engine"] == {"status": "connected", "device": "CPU"}
    # The panel's settings became one plain request.
    req = r["request"]
    assert (req["prompt"], req["method"], req["seed"], req["variants"]) == ("a red cube", "sds", 5, 2)
    assert (req["steps"], req["texture_size"], req["options"]["export.resolution"]) == (30, 256, 64)

    # Progress with an ETA, and live previews: written into the add-on's user folder and loaded.
    assert r["progress_seen"] and all(
        total == 30 and eta is not None for _, _, total, eta in r["progress_seen"]
    )
    assert r["previews"] >= 2, r["previews"]  # at least one per variant (every 25 steps and the last)
    assert "extensions/.user/user_default/text3d/previews/" in r["preview_file"]
    assert r["preview_png"] == "89504e470d0a1a0a" and r["preview_loaded"]

    job = r["job"]
    assert job["state"] == "done" and job["local"] and job["seeds"] == [5, 6] and job["results"] == [0, 1]
    assert all("extensions/.user/user_default/text3d/results/" in f for f in job["files"])

    # Both variants imported: named prompt + seed, tagged, in the prompt's collection, side by side at the
    # 3D cursor (1, 2, 0), each with its baked texture feeding a Principled BSDF.
    assets = r["assets"]
    assert [a["name"] for a in assets] == ["a red cube seed 5", "a red cube seed 6"], r["new_objects"]
    assert r["new_objects"] == ["a red cube seed 5", "a red cube seed 6"]  # nothing else was added
    assert r["collection_in_scene"]
    for asset, seed, variant in zip(assets, (5, 6), (0, 1)):
        assert asset["type"] == "MESH" and asset["collections"] == ["a red cube"]
        assert asset["props"] == {
            "text3d_job_id": job["id"],
            "text3d_prompt": "a red cube",
            "text3d_method": "sds",
            "text3d_seed": seed,
            "text3d_variant": variant,
        }
        assert asset["principled"] and asset["base_color_from"] == "ShaderNodeTexImage"
        assert asset["image"]["size"] == [256, 256] and asset["image"]["distinct_texels"] > 10
        assert asset["location"][1:] == [2.0, 0.0]
    (lo0, hi0), (lo1, hi1) = (a["bounds_x"] for a in assets)
    assert hi0 < lo1, (lo0, hi0, lo1, hi1)  # side by side along X, not overlapping
    assert abs((lo0 + hi1) / 2 - 1.0) < 1e-3  # the row is centred on the cursor
    assert r["draw"]["problems"] == [] and "Done: 2 assets, imported" in r["draw"]["labels"]

    # One undo step: a single undo removes the whole import and nothing done before it.
    assert r["after_undo"] == {"tagged": [], "marker": True, "collection": False}
    assert r["reimport"]["result"] == ["FINISHED"]
    assert r["after_reimport"] == {"tagged": ["a red cube seed 5", "a red cube seed 6"], "imported": 2}


def test_earlier_jobs_are_listed_and_importable_and_cancel_stops_a_running_job(
    engine: Engine, extension_zip: Path, tmp_path: Path
):
    # A job from "an earlier session": submitted straight to the engine before Blender starts.
    client = EngineClient(engine.url, engine.data_dir / "token")
    earlier = client.submit(
        {
            "prompt": "a white torus",
            "method": "sds",
            "seeds": [4],
            "steps": 10,
            "texture_size": 256,
            "options": FAST_OPTIONS,
        }
    )["id"]
    deadline = time.monotonic() + 120
    while client.job(earlier)["state"] != "done":
        assert time.monotonic() < deadline, client.job(earlier)
        time.sleep(0.2)

    p = params(extension_zip, engine.url, engine.data_dir, steps=300, earlier_job_id=earlier)
    r = run_session("history_and_cancel", p, tmp_path)

    assert r["earlier"] == {
        "prompt": "a white torus",
        "method": "sds",
        "state": "done",
        "seeds": [4],
        "local": False,
        "imported": 0,
    }
    assert "Seed 4 · not from this Blender" in r["draw"]["labels"]
    assert f"text3d.import_results:job_key={earlier}" in r["draw"]["operators"]
    # Downloads first (nothing changed yet: no undo step), then imports on a later pump.
    assert r["import_earlier"] == {"result": ["CANCELLED"], "error": None}
    (asset,) = r["earlier_assets"]
    assert asset["name"] == "a white torus seed 4" and asset["props"]["text3d_job_id"] == earlier
    assert asset["base_color_from"] == "ShaderNodeTexImage"
    # Import options: "place at 3D cursor" off (the cursor was at 5, 5), a target collection for prompts.
    assert asset["location"] == [0.0, 0.0, 0.0] and asset["collections"] == ["a white torus"]
    assert r["target_collection"] == {"in_scene": True, "children": ["a white torus"]}

    assert r["generate"]["result"] == ["FINISHED"] and r["cancel"] == {"result": ["FINISHED"], "error": None}
    assert r["job"]["state"] == "cancelled" and r["job"]["results"] == 0
    assert r["job"]["step"] < r["job"]["total"] == 300
    assert r["seconds_to_stop"] < 10
    assert r["tagged_after_cancel"] == ["a white torus seed 4"]  # nothing of the cancelled job imported
    assert r["cancel_again"] == {"result": ["CANCELLED"], "error": None}  # a finished job: nothing to do


def test_killed_engine_is_shown_and_restart_resumes_the_job(extension_zip: Path, tmp_path: Path):
    r = run_session("crash_restart", own_engine(tmp_path, extension_zip, kill_at_step=8, steps=30), tmp_path)

    # Generate with no engine running starts one (auto-start) and sends the job once it answers.
    assert r["status_before"] == "not running" and r["generate"]["result"] == ["FINISHED"]
    assert r["status_after_generate"] == "starting" and r["job_state_while_starting"] == "waiting"
    assert r["owned"] and 8 <= r["killed_at_step"] < 30

    crashed = r["after_kill"]
    assert crashed["status"] == "crashed" and crashed["label"] == "Crashed"
    assert "killed by SIGKILL" in crashed["message"]
    assert "restart it to continue from the last checkpoint" in crashed["job_message"]
    assert "Engine: Crashed" in crashed["draw"]["labels"] and crashed["draw"]["problems"] == []
    assert "text3d.start_engine" in crashed["draw"]["operators"]
    assert r["seconds_to_notice"] < 5

    assert r["restart"]["result"] == ["FINISHED"] and r["status_after_restart"] == "starting"
    assert r["new_pid"] != r["old_pid"]
    job = r["job"]
    assert job["state"] == "done" and job["imported"] == 1 and job["error"] is None
    assert any("resumed from step" in m for m in job["messages"]), job["messages"]  # from its checkpoint
    (asset,) = r["assets"]
    assert asset["name"] == "a green cone seed 0" and asset["base_color_from"] == "ShaderNodeTexImage"
    assert r["engine_stopped_on_disable"]  # disabling the add-on stops the engine it started


def test_disabling_mid_job_returns_at_once_and_the_job_stays_this_blenders(
    extension_zip: Path, tmp_path: Path
):
    """Disable / Reload Scripts / quit never freeze Blender waiting for the engine (it checkpoints and stops
    by itself once its stdin closes), and after enabling again the job is still recognised as started
    here: it resumes on the next engine start and is imported into the file and scene it came from."""
    r = run_session("reenable", own_engine(tmp_path, extension_zip, steps=120), tmp_path, timeout=600)
    assert r["generate"]["result"] == ["FINISHED"]
    assert r["disable_seconds"] < 0.5, r["disable_seconds"]
    assert r["engine_stopped_by_itself"]
    assert r["remembered"] and r["start"]["result"] == ["FINISHED"]
    assert r["listed"]["local"] and r["listed"]["origin_scene"] == "Scene"
    assert r["finished"] == {"state": "done", "imported": 1, "error": None}
    assert r["assets"] == ["a green cone seed 0"]
    assert r["engine_stopped_on_disable"]


def test_keep_engine_running_only_when_asked(extension_zip: Path, tmp_path: Path):
    p = own_engine(tmp_path, extension_zip)
    try:
        r = run_session("keep_engine", p, tmp_path)
        assert r["start"]["result"] == ["FINISHED"] and r["start_again"]["result"] == ["FINISHED"]
        assert r["first_stopped"]
        assert r["second_alive_after_disable"]
        assert health(p["url"]) is not None  # still serving after Blender exited: the user kept it
    finally:
        pid = r["second_pid"] if "r" in locals() else None
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid, 30)


def test_engine_stops_when_blender_dies(extension_zip: Path, tmp_path: Path):
    """Blender killed outright (no exit handlers run): the engine notices its stdin closing and stops."""
    p = own_engine(tmp_path, extension_zip)
    proc = subprocess.Popen(
        [sys.executable, str(SESSION), "serve_then_hang", json.dumps(p)],
        cwd=tmp_path,
        env=blender_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    pid = None
    try:
        deadline = time.monotonic() + 240
        for line in proc.stdout:
            if line.startswith("REPORT "):
                pid = json.loads(line[len("REPORT ") :])["engine_pid"]
                break
            assert time.monotonic() < deadline
        assert pid is not None, "the session did not report an engine"
        assert health(p["url"]) is not None
        proc.kill()  # SIGKILL Blender
        proc.wait()
        assert wait_gone(pid, 30), "the engine outlived Blender"
        assert health(p["url"]) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if pid is not None and not wait_gone(pid, 0):
            os.kill(pid, signal.SIGKILL)
