"""``scripts/generate.py`` run as ``python scripts/generate.py -- …`` with the bpy module (as Blender would run
it with ``blender -b -P``): it starts or uses an engine, prints progress, and saves a .blend whose assets are
textured and tagged when opened in a fresh Blender."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.blender_addon.conftest import FAST_OPTIONS, REPO, Engine, child_env, free_port, health, run_session

SCRIPT = REPO / "scripts" / "generate.py"


def fast_flags() -> list[str]:
    flags = ["--steps", "30", "--texture-size", "256"]
    for key, value in FAST_OPTIONS.items():
        flags += ["--option", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    return flags


def run_script(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--", *args],
        cwd=tmp_path,
        env=child_env(BLENDER_USER_RESOURCES=str(tmp_path / "blender_user")),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_headless_starts_an_engine_and_saves_a_textured_blend(tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "scene.blend"
    r = run_script(
        tmp_path,
        *("--prompt", "a red cube", "--out", str(out), "--seeds", "2,7", "--empty"),
        *("--engine-url", url, "--data-dir", str(tmp_path / "data"), "--python", sys.executable),
        *fast_flags(),
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert any(line.startswith("starting the engine:") for line in lines)
    assert any("variant 1/2 (seed 2) step" in line and "left" in line for line in lines), lines
    assert any("variant 2/2 (seed 7)" in line for line in lines), lines
    assert f"saved {out} with 2 asset(s): a red cube seed 2, a red cube seed 7" in lines
    assert health(url) is None  # the engine it started is stopped again

    blend = run_session("open_blend", {"blend": str(out)}, tmp_path)
    assert blend["collections"] == {"a red cube": ["a red cube seed 2", "a red cube seed 7"]}
    for asset, seed in zip(blend["assets"], (2, 7)):
        assert asset["props"]["text3d_seed"] == seed and asset["props"]["text3d_prompt"] == "a red cube"
        assert asset["principled"] and asset["base_color_from"] == "ShaderNodeTexImage"
        image = asset["image"]
        assert image["packed"] and image["size"] == [256, 256] and image["distinct_texels"] > 10
    (lo0, hi0), (lo1, hi1) = (a["bounds_x"] for a in blend["assets"])
    assert hi0 < lo1  # variants side by side


def test_headless_uses_a_running_engine_and_reports_a_refused_prompt(engine: Engine, tmp_path: Path):
    out = tmp_path / "frog.blend"
    r = run_script(
        tmp_path,
        *("--prompt", "a blue frog", "--out", str(out), "--engine-url", engine.url),
        *("--data-dir", str(engine.data_dir), "--no-start"),
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"engine 0.1.0 at {engine.url} on CPU" in r.stdout  # connected, did not start another
    assert "error: the engine refused the job: unknown word(s) 'frog'" in r.stderr
    assert not out.exists()


def test_headless_argument_errors_exit_2(tmp_path: Path):
    r = run_script(tmp_path, "--prompt", "a red cube", "--out", str(tmp_path / "x.glb"))
    assert r.returncode == 2 and "--out must be a .blend file" in r.stderr
    r = run_script(tmp_path, "--prompt", "a red cube", "--out", str(tmp_path / "x.blend"), "--lam", "0.3")
    assert r.returncode == 2 and "--lam applies to --method esd only" in r.stderr
    r = run_script(tmp_path, "--out", str(tmp_path / "x.blend"))
    assert r.returncode == 2 and "--prompt" in r.stderr
