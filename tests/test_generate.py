"""`python -m engine.generate`: a full CPU run with a tiny prior, and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = [
    "--steps",
    "8",
    "--render-size",
    "16",
    "--renderer.n-samples",
    "24",
    "--field.grid.compile",
    "false",
    "--field.grid.n-levels",
    "8",
    "--field.grid.log2-hashmap-size",
    "14",
    "--mesh-resolution",
    "32",
    "--train.preview-every",
    "4",
    "--train.preview-size",
    "16",
    "--quiet",
]


def generate(*args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "engine.generate", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def test_cli_runs_end_to_end_and_records_the_config(tiny_pixel_prior_dir, tmp_path):
    out = tmp_path / "cube.glb"
    r = generate("a red cube", "--out", str(out), "--prior", str(tiny_pixel_prior_dir), "--seed", "5", *FAST)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:4] == b"glTF"
    run = json.loads((tmp_path / "cube_run" / "run.json").read_text())
    assert run["config"]["train"]["seed"] == 5 and run["config"]["train"]["steps"] == 8
    assert run["config"]["prompt"] == "a red cube" and run["mesh"]["faces"] > 0
    # The export writes the texture (also embedded in the .glb) and a turntable beside the asset, and records
    # its per-step timings and the placement transform.
    assert (tmp_path / "cube_texture.png").exists() and (tmp_path / "cube_turntable.png").exists()
    assert {"grid", "marching_cubes", "decimate", "uv", "bake"} <= set(run["export"]["seconds"])
    assert run["export"]["placement"]["units"] == "metres"
    assert sorted(p.name for p in (tmp_path / "cube_run" / "previews").iterdir()) == [
        "step_00004.png",
        "step_00008.png",
    ]
    assert (tmp_path / "cube_run" / "checkpoint.pt").exists()
    # --resume of a finished run: nothing left to train, the asset is written again.
    r2 = generate(
        "a red cube",
        "--out",
        str(out),
        "--prior",
        str(tiny_pixel_prior_dir),
        "--seed",
        "5",
        "--resume",
        *FAST,
    )
    assert r2.returncode == 0, r2.stderr


def test_several_seeds_give_one_asset_each(tiny_pixel_prior_dir, tmp_path):
    out = tmp_path / "cube.glb"
    r = generate(
        "a red cube", "--out", str(out), "--prior", str(tiny_pixel_prior_dir), "--seeds", "3,7", *FAST
    )
    assert r.returncode == 0, r.stderr
    for seed in (3, 7):
        assert (tmp_path / f"cube_s{seed}.glb").read_bytes()[:4] == b"glTF"
        run = json.loads((tmp_path / "cube_run" / f"seed_{seed}" / "run.json").read_text())
        assert run["seed"] == seed and run["config"]["train"]["seed"] == seed
    assert not out.exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["", "--out", "x.glb"], "prompt is empty"),
        (["a cube", "--out", "x.glb", "--steps", "0"], "train.steps must be >= 1"),
        (["a cube", "--out", "x.glb", "--steps", "-3"], "train.steps must be >= 1"),
        (["a cube", "--out", "x.glb", "--method", "magic"], "unknown method 'magic'"),
        (["a cube", "--out", "x.glb", "--prior", "nonsense"], "prior"),
        (["a cube", "--out", "x.glb", "--preset", "ultra"], "unknown preset 'ultra'"),
        (["a cube", "--out", "/proc/forbidden/x.glb"], "cannot write to /proc/forbidden"),
        (["a cube", "--out", "x.txt"], "give a .glb file or a folder"),
        (["a cube", "--out", "x.glb", "--steps", "many"], "invalid int value"),
        (["a cube", "--out", "x.glb", "--guidance.weighting", "cubic"], "invalid choice"),
        (["a cube", "--out", "x.glb", "--seeds", "1,b"], "--seeds '1,b': give comma-separated integers"),
        (["a cube", "--out", "x.glb", "--seeds", "1,1"], "seeds must be distinct"),
        (["a cube", "--out", "x.glb", "--seeds", "1,2", "--variants", "2"], "either seeds or variants"),
        (["a cube", "--out", "x.glb", "--variants", "99"], "the limit is 16"),
        (
            ["a cube", "--out", "x.glb", "--export.texture-size", "1000"],
            "texture_size must be a power of two",
        ),
    ],
)
def test_bad_input_is_one_line_with_nonzero_exit(args, needle, tmp_path):
    r = generate(*[a.replace("x.glb", str(tmp_path / "x.glb")) for a in args], timeout=120)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


def test_unknown_word_for_a_word_level_prior(tiny_pixel_prior_dir, tmp_path):
    r = generate(
        "a purple dragon", "--out", str(tmp_path / "d.glb"), "--prior", str(tiny_pixel_prior_dir), *FAST
    )
    assert r.returncode == 2
    assert "dragon" in r.stderr and "Stable Diffusion" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_documents_every_flag():
    r = generate("--help", timeout=120)
    assert r.returncode == 0
    for flag in (
        "--steps",
        "--seed",
        "--method",
        "--prior",
        "--preset",
        "--guidance-scale",
        "--train.lr-grid",
        "--renderer.occupancy.resolution",
        "--field.grid.n-levels",
        "--cameras.fov-range",
    ):
        assert flag in r.stdout
    assert "Classifier-free guidance scale" in r.stdout  # help comes from the config docstrings
