"""Prompt → .glb per method: wall time of ``python -m engine.generate PROMPT --out X.glb --method M --quiet``
run as a subprocess (what users run), split with the run's ``run.json`` into start-up, prior load, training
and export, plus the export's per-step times.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.benchmarks.common import markdown_table
from scripts.benchmarks.config import BenchConfig

REPO = Path(__file__).resolve().parents[2]


def bench_e2e(cfg: BenchConfig) -> dict[str, Any]:
    """Prompt → .glb per method: ``python -m engine.generate`` in a subprocess, timed from outside, with the
    split its ``run.json`` records (prior load, training, export and the export's steps)."""
    c = cfg.e2e
    result: dict[str, Any] = {"prompt": c.prompt, "preset": c.preset, "flags": c.flags, "methods": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(c.keep) if c.keep else Path(tmp)
        for m in cfg.methods:
            asset = root / m / "asset.glb"
            cmd = [sys.executable, "-m", "engine.generate", c.prompt, "--out", str(asset), "--method", m]
            cmd += ["--preset", c.preset, "--quiet", *shlex.split(c.flags)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(
                    f"e2e {m}: `{shlex.join(cmd)}` exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
                )
            record = json.loads((asset.parent / f"{asset.stem}_run" / "run.json").read_text())
            sec = record["seconds"]
            result["methods"][m] = {
                "command": shlex.join(["python", *cmd[1:]]),
                "wall_s": wall,
                "startup_s": wall - sec["prior_load"] - sec["train"] - sec["export"],
                "prior_load_s": sec["prior_load"],
                "train_s": sec["train"],
                "steps": record["config"]["train"]["steps"],
                "train_it_per_s": record["config"]["train"]["steps"] / sec["train"],
                "export_s": sec["export"],
                "export_steps_s": record["export"]["seconds"],
                "faces": record["mesh"]["faces"],
                "glb_bytes": asset.stat().st_size,
            }
    ms = result["methods"]
    shown = ["python", "-m", "engine.generate", c.prompt, "--out", "X.glb", "--method", "M"]
    shown += ["--preset", c.preset, "--quiet", *shlex.split(c.flags)]
    result["table"] = markdown_table(
        f"prompt → .glb: `{shlex.join(shown)}`, one run per method, seconds",
        ["method", "wall", "start-up", "prior load", "train (it/s)", "export", "faces"],
        [
            [
                m,
                f"{r['wall_s']:.1f}",
                f"{r['startup_s']:.1f}",
                f"{r['prior_load_s']:.1f}",
                f"{r['train_s']:.1f} ({r['train_it_per_s']:.2f})",
                f"{r['export_s']:.1f}",
                str(r["faces"]),
            ]
            for m, r in ms.items()
        ],
    )
    steps = list(dict.fromkeys(s for r in ms.values() for s in r["export_steps_s"]))
    result["table"] += "\n" + markdown_table(
        "export breakdown per step (engine.export.pipeline), seconds",
        ["method", *steps],
        [[m, *(f"{r['export_steps_s'].get(s, 0.0):.2f}" for s in steps)] for m, r in ms.items()],
    )
    return result
