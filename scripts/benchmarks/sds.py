"""SDS training steps per second at several render sizes with a tiny random 32 px pixel prior: the full
step (occupancy update, render, prior CFG, backward, Adam) with almost no prior, i.e. the engine's own cost.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from scripts.benchmarks.common import markdown_table
from scripts.benchmarks.config import BenchConfig


def bench_sds(cfg: BenchConfig) -> dict[str, Any]:
    """SDS iterations/s of the full training step (occupancy update, render, prior CFG, backward, Adam)
    at several render sizes, with a random tiny pixel prior at 32 px (the built-in prior's native size)."""
    import diffusers.utils.logging
    import transformers.utils.logging

    from engine.config import build_config
    from engine.priors.pixel import PixelPriorConfig
    from engine.train import Trainer
    from tests.priors.tiny import build_tiny_pixel_prior

    diffusers.utils.logging.disable_progress_bar()  # the tiny prior's save/load bars
    transformers.utils.logging.disable_progress_bar()
    c = cfg.sds
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prior_dir = build_tiny_pixel_prior(Path(tmp) / "prior", sample_size=32)
        prior = PixelPriorConfig(str(prior_dir)).setup("cpu")
        for size in c.sizes:
            run = build_config(
                "a red cube",
                prior=str(prior_dir),  # the config names the prior it runs with
                overrides={
                    "train.render_size": size,
                    "train.steps": c.warmup + c.steps,
                    "train.checkpoint_every": 0,
                    "train.preview_every": 0,
                    "field.grid.compile": c.compile,
                },
            )
            trainer = Trainer(run, prior, Path(tmp) / f"run{size}")
            for _ in range(c.warmup):
                trainer.train_step()
            samples = 0
            t0 = time.perf_counter()
            for _ in range(c.steps):
                samples += trainer.train_step()["samples"]
            dt = time.perf_counter() - t0
            results[f"{size}px"] = {"it_per_s": c.steps / dt, "field_samples_per_it": samples / c.steps}
    results["table"] = markdown_table(
        f"SDS training step (batch 1, tiny random 32 px prior, compile={c.compile}), "
        f"{c.steps} steps after {c.warmup} warm-up",
        ["render size", "it/s", "field samples/it"],
        [[k, f"{v['it_per_s']:.2f}", f"{v['field_samples_per_it']:.0f}"] for k, v in results.items()],
    )
    return results
