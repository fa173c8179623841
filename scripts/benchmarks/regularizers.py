"""Per-step cost of each geometry regulariser (``engine/regularizers.py``) on an SDS run with the built-in prior.

One trainer per variant — every term off, each term alone, every term on (the defaults' set) — all with the
terms at full weight from step 0 (ramps off) and shaded steps, so the timed steps are the expensive ones
of a real run. Blocks of steps are timed round-robin with the order rotated every round; medians reported,
with each variant's step time ÷ the all-off step time of the same round. Coarse-to-fine costs nothing per
step (a mask on the encoding) and is not timed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from scripts.benchmarks.common import _ms, markdown_table, step_overrides
from scripts.benchmarks.config import BenchConfig

TERMS = ("normal_smooth", "orientation", "opacity_entropy")


def _variants() -> dict[str, dict[str, float]]:
    """Variant name → the regulariser weights it sets (the defaults' weights; orientation at 10)."""
    weights = {"normal_smooth": 100.0, "orientation": 10.0, "opacity_entropy": 10.0}
    off = {t: 0.0 for t in TERMS}
    out = {"off": off}
    out.update({t: {**off, t: weights[t]} for t in TERMS})
    out["all"] = dict(weights)
    return out


def bench_regularizers(cfg: BenchConfig) -> dict[str, Any]:
    from engine.config import build_config
    from engine.priors import load_prior, resolve_prior_spec
    from engine.train import Trainer

    c = cfg.regularizers
    prior = load_prior(resolve_prior_spec("builtin"), torch.device("cpu"))
    base: dict[str, Any] = step_overrides(c.compile, c.render_size)
    for t in TERMS:
        base[f"regularizers.{t}_ramp.start"] = 0.0
        base[f"regularizers.{t}_ramp.ramp"] = 0.0
    variants = _variants()
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for n, w in variants.items():
            over = {**base, **{f"regularizers.{t}": v for t, v in w.items()}}
            trainers[n] = Trainer(
                build_config("a red cube", "sds", "builtin", "fast", over), prior, Path(tmp) / n
            )
            for _ in range(c.warmup):
                trainers[n].train_step()
        for r in range(c.rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                for _ in range(c.block):
                    trainers[n].train_step()
                times[n].append((time.perf_counter() - t0) / c.block)
        size = trainers["off"].cfg.train.render_size
    result: dict[str, Any] = {"render_size": size, "weights": variants, "variants": {}}
    rows = []
    for n in names:
        ratio = statistics.median(a / b for a, b in zip(times[n], times["off"]))
        step = statistics.median(times[n])
        result["variants"][n] = {"step_s": step, "vs_off": ratio, "step_s_per_round": times[n]}
        rows.append([n, _ms(step), f"{ratio:.2f}", f"{(ratio - 1) * 100:+.0f}%"])
    result["table"] = markdown_table(
        f"geometry regularisers: SDS step with the built-in prior, {size}² render, shaded, terms at full weight; "
        f"median of {c.rounds} blocks of {c.block} step(s), interleaved",
        ["terms on", "step ms", "÷ all off (same round)", "cost"],
        rows,
    )
    return result
