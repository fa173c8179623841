"""Training-step time per guidance method with the built-in prior, and its overhead ratio: step time ÷ (prior
CFG forward + render forward/backward, each timed alone on the same trainer, batch and size). Steps and
pieces of every method are timed in interleaved rounds, the order rotated every round; medians reported.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from scripts.benchmarks.common import _ms, markdown_table, step_overrides
from scripts.benchmarks.config import BenchConfig

if TYPE_CHECKING:
    from engine.train import Trainer


@dataclass
class _MethodTimer:
    """One method's trainer and its timings; the pieces draw from their own generator, so the trainer's
    random streams are the ones a real run would see."""

    trainer: Trainer
    gen: torch.Generator
    step_s: list[float] = field(default_factory=list)
    """Time per step of each timed block."""
    samples: list[float] = field(default_factory=list)
    prior_cfg_s: list[float] = field(default_factory=list)
    render_s: list[float] = field(default_factory=list)

    def paired_ratio(self) -> float:
        """Median over rounds of the round's step time ÷ (its CFG forward + render, medians of the round):
        samples taken seconds apart share the machine's state, so slow drifts in load cancel."""
        k = len(self.prior_cfg_s) // len(self.step_s)
        return statistics.median(
            step
            / (
                statistics.median(self.prior_cfg_s[i * k : (i + 1) * k])
                + statistics.median(self.render_s[i * k : (i + 1) * k])
            )
            for i, step in enumerate(self.step_s)
        )

    def block(self, steps: int) -> None:
        t0, n = time.perf_counter(), 0
        for _ in range(steps):
            n += self.trainer.train_step()["samples"]
        self.step_s.append((time.perf_counter() - t0) / steps)
        self.samples.append(n / steps)

    def prior_cfg(self) -> float:
        """One classifier-free-guided prior call, as SDS makes it: the UNet on [uncond; cond] at the prior's
        resolution for the step's batch, no grad."""
        from engine.guidance.sds import cfg_noise

        tr = self.trainer
        prior, b = tr.prior, tr.cfg.train.batch_size
        text = tr.prompt_embeddings(tr.sampler.sample(b, self.gen))
        r = prior.latent_resolution
        z_t = torch.randn(b, prior.latent_channels, r, r, generator=self.gen).to(prior.device)
        t = torch.randint(0, prior.num_train_timesteps, (b,), generator=self.gen).to(prior.device)
        t0 = time.perf_counter()
        with torch.no_grad():
            cfg_noise(prior, z_t, t, text, 7.5)
        dt = time.perf_counter() - t0
        self.prior_cfg_s.append(dt)
        return dt

    def render(self) -> float:
        """Render forward + backward (random upstream gradient) of the step's batch, size and shading on
        the trainer's current field and occupancy grid; the gradients are dropped afterwards."""
        tr = self.trainer
        b, size = tr.cfg.train.batch_size, tr.cfg.train.render_size
        cams = tr.sampler.sample(b, self.gen)
        shading = tr.renderer.pick_shading(tr.step, self.gen)
        light = tr.renderer.random_light(cams, self.gen).to(tr.device)
        upstream = torch.randn(b, 3, size, size, generator=self.gen).to(tr.device)
        t0 = time.perf_counter()
        out = tr.renderer.render(tr.field, cams.to(tr.device), size, shading, light, self.gen)
        out.rgb.backward(upstream)
        dt = time.perf_counter() - t0
        tr.optimizer.zero_grad(set_to_none=True)
        self.render_s.append(dt)
        return dt


def bench_iteration(cfg: BenchConfig) -> dict[str, Any]:
    """Step time per method with the built-in prior, interleaved with the pieces it is compared to.

    Every method gets its own trainer (default config of the method, built-in prior tuning, the preset)
    with ``renderer.shading_start_step = 0``: the timed steps are shaded, as every step after the first
    100 of a real run is (shading adds 6 density queries per ray for the normals). After the warm-up,
    each round times, per method in rotating order, one block of steps, then the prior CFG forward and the
    render forward+backward alone. Reported: medians; the overhead ratio is the median over rounds of the
    round's step time ÷ (CFG forward + render) of the same round.
    """
    from engine.config import build_config
    from engine.priors import load_prior, resolve_prior_spec
    from engine.train import Trainer

    c = cfg.iteration
    prior = load_prior(resolve_prior_spec("builtin"), torch.device("cpu"))
    overrides: dict[str, Any] = step_overrides(c.compile, c.render_size)
    methods = cfg.methods
    with tempfile.TemporaryDirectory() as tmp:
        timers: dict[str, _MethodTimer] = {}
        for k, m in enumerate(methods):
            run = build_config("a red cube", m, "builtin", c.preset, overrides)
            timers[m] = _MethodTimer(Trainer(run, prior, Path(tmp) / m), torch.Generator().manual_seed(k))
            for _ in range(c.warmup):
                timers[m].trainer.train_step()
            timers[m].prior_cfg()  # warm-up of the pieces' own shapes, not kept
            timers[m].render()
            timers[m].prior_cfg_s.clear()
            timers[m].render_s.clear()
        for r in range(c.rounds):
            for m in methods[r % len(methods) :] + methods[: r % len(methods)]:
                timers[m].block(c.block)
                for _ in range(c.piece_repeats):
                    timers[m].prior_cfg()
                    timers[m].render()
        run0 = next(iter(timers.values())).trainer.cfg
    from engine.fields import hashgrid_torch

    result: dict[str, Any] = {
        "prior": prior.name,
        "render_size": run0.train.render_size,
        "batch_size": run0.train.batch_size,
        "grid_compile": run0.field.grid.compile,
        "grid_compile_failed": hashgrid_torch._KERNELS.failed,
        "occupancy_update_every": run0.renderer.occupancy.update_every,
        "settings": dataclasses.asdict(c),
        "methods": {},
    }
    rows = []
    for m, tm in timers.items():
        step, cfg_fwd, render = (statistics.median(v) for v in (tm.step_s, tm.prior_cfg_s, tm.render_s))
        r = {
            "iteration_s": step,
            "it_per_s": 1.0 / step,
            "prior_cfg_forward_s": cfg_fwd,
            "render_fwd_bwd_s": render,
            "rest_s": step - cfg_fwd - render,
            "overhead_ratio": tm.paired_ratio(),
            "field_samples_per_it": statistics.mean(tm.samples),
            "iteration_s_per_block": tm.step_s,
            "prior_cfg_forward_s_all": tm.prior_cfg_s,
            "render_fwd_bwd_s_all": tm.render_s,
        }
        result["methods"][m] = r
        rows.append(
            [
                m,
                _ms(step),
                f"{1 / step:.2f}",
                _ms(cfg_fwd),
                _ms(render),
                _ms(r["rest_s"]),
                f"{r['overhead_ratio']:.2f}",
                f"{r['field_samples_per_it'] / 1e3:.1f}k",
            ]
        )
    result["table"] = markdown_table(
        f"training step per method: built-in prior, {result['render_size']}² render, batch "
        f"{result['batch_size']}, shaded, compile={result['grid_compile']}; median of {c.rounds} blocks of "
        f"{c.block} step(s) after {c.warmup} warm-up, pieces {c.rounds * c.piece_repeats}× each, interleaved",
        [
            "method",
            "step ms",
            "it/s",
            "prior CFG fwd ms",
            "render fwd+bwd ms",
            "rest ms",
            "overhead: step ÷ (CFG + render)",
            "field samples/it",
        ],
        rows,
    )
    return result
