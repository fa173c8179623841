"""Engine speed, side by side in one run: one suite per question, each a function returning a dict of numbers.

    python scripts/bench.py                                   # every suite (~20 min on a quiet 2-core CPU)
    python scripts/bench.py --suites hashgrid,iteration --json bench.json
    python scripts/bench.py --quick                           # tiny sizes: checks the pipeline in < 1 min
    python scripts/bench.py --suites e2e --methods sds,esd --e2e.flags="--steps 200"

Numbers quoted in docs come from this script. It prints markdown tables and, with ``--json``, writes every
number; both carry the command, the git commit and the machine (CPUs, torch threads, load average).
Timings that are compared with each other are taken in the same process and interleaved (round-robin, the
order rotated every round), so machine noise hits them alike; medians are reported.

Suites
    hashgrid   hash-grid encoding throughput (points/s, forward and forward+backward) of the fast torch
               grid, eager and compiled, against the naive reference in ``tests/fields/reference_hashgrid.py``.
    sds        SDS training steps per second at 32² and 64² with a tiny random 32 px prior: the engine's own
               cost (field, renderer, Adam) with almost no prior.
    iteration  training-step time per method with the built-in prior at the preset's render size, and its
               overhead ratio: step time ÷ (prior CFG forward + render forward/backward, each timed alone
               on the same trainer, batch and size). 1 would mean the step is nothing but those two pieces;
               the rest is the occupancy update, image encoding, Adam, and the method's own work (LMC-SDS's
               corrective, ESD/VSD's ε_ψ forward and LoRA training step).
    e2e        prompt → .glb per method: wall time of ``python -m engine.generate PROMPT --out X.glb --method
               M --quiet`` as a subprocess (what users run), split with the run's ``run.json`` into start-up,
               prior load, training and export, and the export's per-step times.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # engine/ and tests/

import torch  # noqa: E402

import engine  # noqa: E402  (sets THP_MEM_ALLOC_ENABLE; torch reads it at its first big allocation, below)
from engine.cli import OneLineParser, add_config_flags, apply_overrides  # noqa: E402
from engine.config import PRESETS  # noqa: E402
from engine.guidance import METHODS  # noqa: E402

if TYPE_CHECKING:
    from engine.train import Trainer

# ----------------------------------------------------------------------------------------------- config


@dataclass
class HashgridBench:
    """Hash-grid throughput (default grid config, uniform random points)."""

    points: int = 2**17
    """Points per batch."""
    repeats: int = 5
    """Timed calls per measurement (median reported)."""


@dataclass
class SdsBench:
    """SDS steps/s with a tiny random 32 px pixel prior."""

    sizes: list[int] = field(default_factory=lambda: [32, 64])
    """Render sizes in pixels (comma-separated)."""
    steps: int = 40
    """Timed training steps per size."""
    warmup: int = 10
    """Untimed steps first (compile, occupancy settling)."""
    compile: bool = True
    """torch.compile the hash grid (false: eager)."""


@dataclass
class IterationBench:
    """Step time per method with the built-in prior, and the overhead ratio."""

    render_size: int = 0
    """Render size in pixels (0: the preset's, 64 for fast)."""
    preset: str = "fast"
    """Settings preset of the runs."""
    warmup: int = 16
    """Untimed steps per method first (the first one compiles the hash grid)."""
    rounds: int = 5
    """Round-robin rounds; each times one block of steps and the pieces of every method."""
    block: int = 16
    """Steps per timed block. 16 = the occupancy grid's update_every: every block holds exactly one
    occupancy update, so the block's time per step is the amortised step time."""
    piece_repeats: int = 3
    """Timed calls of each piece (prior CFG forward, render forward+backward) per method and round."""
    compile: bool = True
    """torch.compile the hash grid, as a run does by default (false: eager)."""


@dataclass
class E2EBench:
    """``python -m engine.generate`` per method, as a subprocess."""

    prompt: str = "a red cube"
    """Prompt of every run."""
    preset: str = "fast"
    """Settings preset of the runs."""
    flags: str = ""
    """Extra engine.generate flags for every run, one shell-quoted string (e.g. "--steps 200")."""
    keep: str = ""
    """Folder to keep the assets and run folders in (empty: a temporary folder, deleted afterwards)."""


@dataclass
class BenchConfig:
    """What to measure and how long; every leaf is a flag (``--iteration.rounds 3``)."""

    suites: list[str] = field(default_factory=lambda: ["hashgrid", "sds", "iteration", "e2e"])
    """Suites to run, comma-separated: hashgrid, sds, iteration, e2e."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Guidance methods of the iteration and e2e suites, comma-separated."""
    hashgrid: HashgridBench = field(default_factory=HashgridBench)
    sds: SdsBench = field(default_factory=SdsBench)
    iteration: IterationBench = field(default_factory=IterationBench)
    e2e: E2EBench = field(default_factory=E2EBench)

    @classmethod
    def quick(cls) -> BenchConfig:
        """Tiny sizes and step counts, eager hash grid outside the hashgrid suite (one compile in all): the
        whole run takes under a minute on a quiet 2-core CPU. The numbers only check the pipeline (the test
        runs this)."""
        return cls(
            hashgrid=HashgridBench(points=2**14, repeats=3),
            sds=SdsBench(sizes=[32], steps=3, warmup=2, compile=False),
            iteration=IterationBench(
                render_size=32, warmup=1, rounds=5, block=1, piece_repeats=1, compile=False
            ),
            e2e=E2EBench(
                flags="--steps 2 --render-size 32 --renderer.n-samples 32 --field.grid.compile false "
                "--field.grid.n-levels 8 --field.grid.log2-hashmap-size 14 --mesh-resolution 32 "
                "--export.texture-size 128 --export.turntable-views 2 --export.turntable-size 64"
            ),
        )

    def validate(self) -> None:
        """Raise ValueError naming the first setting the benchmark cannot run with."""
        for name, given, allowed in (("suite", self.suites, SUITES), ("method", self.methods, METHODS)):
            bad = [x for x in given if x not in allowed]
            if bad or not given:
                raise ValueError(f"unknown or no {name}(s) {bad}: choose from {', '.join(allowed)}")
        for path in (
            "hashgrid.points",
            "hashgrid.repeats",
            "sds.steps",
            "iteration.rounds",
            "iteration.block",
        ):
            obj, leaf = getattr(self, path.split(".")[0]), path.split(".")[1]
            if getattr(obj, leaf) < 1:
                raise ValueError(f"--{path.replace('_', '-')} must be >= 1 (got {getattr(obj, leaf)})")
        if self.iteration.piece_repeats < 1 or not self.sds.sizes:
            raise ValueError("--iteration.piece-repeats must be >= 1 and --sds.sizes non-empty")
        for name, preset in (("iteration", self.iteration.preset), ("e2e", self.e2e.preset)):
            if preset not in PRESETS:
                raise ValueError(f"--{name}.preset {preset!r}: choose one of {', '.join(PRESETS)}")
        shlex.split(self.e2e.flags)  # unbalanced quotes: ValueError now, not after the other suites


# ----------------------------------------------------------------------------------------------- helpers


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def markdown_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"\n**{title}**\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


# ----------------------------------------------------------------------------------------------- hashgrid


def bench_hashgrid(cfg: BenchConfig) -> dict[str, Any]:
    """Points/s of the hash grid (default config, uniform random points), median over ``repeats``.

    "fwd+bwd" is one forward and one backward with a random upstream gradient, as in training; "fwd" runs
    under no_grad, as the occupancy-grid updates do. The compiled grid's first call (compile) is timed
    separately and not part of the throughput.
    """
    from engine.fields import hashgrid
    from engine.fields.hashgrid import HashGridConfig, TorchHashGrid
    from tests.fields.reference_hashgrid import reference_encode

    n, repeats = cfg.hashgrid.points, cfg.hashgrid.repeats
    grid_cfg = HashGridConfig(implementation="torch")
    torch.manual_seed(0)
    eager = TorchHashGrid(HashGridConfig(implementation="torch", compile=False))
    compiled = TorchHashGrid(HashGridConfig(implementation="torch", compile=True))
    with torch.no_grad():
        compiled.embeddings.copy_(eager.embeddings)
    x = torch.rand(n, 3)
    upstream = torch.randn(n, eager.out_dim)

    def fwd_bwd(grid: TorchHashGrid, encode: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            grid.embeddings.grad = None
            (encode(x) * upstream).sum().backward()

        return step

    def fwd(encode: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            with torch.no_grad():
                encode(x)

        return step

    t0 = time.perf_counter()
    fwd_bwd(compiled, compiled)()
    first_call_s = time.perf_counter() - t0
    compiled_ok = not hashgrid._KERNELS.failed
    impls: dict[str, tuple[TorchHashGrid, Callable[[torch.Tensor], torch.Tensor]]] = {
        "fast compiled": (compiled, compiled),
        "fast eager": (eager, eager),
        "naive reference": (eager, lambda p: reference_encode(eager, p)),
    }
    times: dict[str, dict[str, list[float]]] = {k: {"fwd_bwd": [], "fwd": []} for k in impls}
    for grid, encode in impls.values():  # warm-up
        fwd_bwd(grid, encode)()
        fwd(encode)()
    for _ in range(repeats):  # interleaved: one call of each per round
        for name, (grid, encode) in impls.items():
            times[name]["fwd_bwd"] += _time(fwd_bwd(grid, encode), 1)
            times[name]["fwd"] += _time(fwd(encode), 1)
    result: dict[str, Any] = {
        "points": n,
        "repeats": repeats,
        "config": dataclasses.asdict(grid_cfg),
        "compiled_first_call_s": first_call_s,
        "compile_worked": compiled_ok,
    }
    for name, t in times.items():
        result[name] = {
            "fwd_bwd_pts_per_s": n / statistics.median(t["fwd_bwd"]),
            "fwd_pts_per_s": n / statistics.median(t["fwd"]),
        }
    naive = result["naive reference"]["fwd_bwd_pts_per_s"]
    rows = []
    for name in impls:
        r = result[name]
        r["fwd_bwd_vs_naive"] = r["fwd_bwd_pts_per_s"] / naive
        rows.append(
            [
                name,
                f"{r['fwd_pts_per_s'] / 1e6:.3f}",
                f"{r['fwd_bwd_pts_per_s'] / 1e6:.3f}",
                f"{r['fwd_bwd_vs_naive']:.1f}×",
            ]
        )
    result["table"] = markdown_table(
        f"hash grid: {n} points, L={grid_cfg.n_levels} F={grid_cfg.n_features_per_level} "
        f"T=2^{grid_cfg.log2_hashmap_size}, median of {repeats}; compiled first call {first_call_s:.1f} s"
        + ("" if compiled_ok else " (compile FAILED: eager numbers)"),
        ["implementation", "fwd Mpts/s", "fwd+bwd Mpts/s", "fwd+bwd vs naive"],
        rows,
    )
    return result


# ----------------------------------------------------------------------------------------------- sds


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
                prior="bench",
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


# ----------------------------------------------------------------------------------------------- iteration


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
    overrides: dict[str, Any] = {
        "train.checkpoint_every": 0,
        "train.preview_every": 0,
        "renderer.shading_start_step": 0,
        "field.grid.compile": c.compile,
    }
    if c.render_size:
        overrides["train.render_size"] = c.render_size
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
    from engine.fields import hashgrid

    result: dict[str, Any] = {
        "prior": prior.name,
        "render_size": run0.train.render_size,
        "batch_size": run0.train.batch_size,
        "grid_compile": run0.field.grid.compile,
        "grid_compile_failed": hashgrid._KERNELS.failed,
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


# ----------------------------------------------------------------------------------------------- e2e


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


# ----------------------------------------------------------------------------------------------- main

SUITES: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "hashgrid": bench_hashgrid,
    "sds": bench_sds,
    "iteration": bench_iteration,
    "e2e": bench_e2e,
}


def git_commit() -> dict[str, Any]:
    """HEAD and whether tracked files differ from it (read-only: no optional index refresh)."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {
        "commit": head.stdout.strip(),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip()),
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "engine": engine.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "load_avg_start": list(os.getloadavg()),
    }


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, argparse.Namespace]:
    """The config (defaults or ``--quick``, then the flags given) and the parsed arguments; bad values exit 2."""
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes (BenchConfig.quick); flags still apply"
    )
    parser.add_argument(
        "--json", type=Path, help="also write every number to this JSON file (after each suite)"
    )
    paths = add_config_flags(parser, BenchConfig, defaults=BenchConfig())
    args = parser.parse_args(argv)
    cfg = apply_overrides(BenchConfig.quick() if args.quick else BenchConfig(), args, paths)
    try:
        cfg.validate()
    except ValueError as e:
        parser.error(str(e))
    return cfg, args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, args = parse_args(argv)
    command = ["python", *sys.argv] if argv is None else ["python", "scripts/bench.py", *argv]
    results: dict[str, Any] = {
        "command": shlex.join(command),
        "git": git_commit(),
        "machine": machine_info(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "config": dataclasses.asdict(cfg),
    }
    m, g = results["machine"], results["git"]
    print(
        f"`{results['command']}` · commit {(g['commit'] or 'unknown')[:10]}{' (dirty)' if g['dirty'] else ''} · "
        f"{m['cpu']}, {m['cpus_usable']} CPUs, {m['torch_threads']} torch threads, torch {m['torch']}, "
        f"Python {m['python']} · load average {m['load_avg_start'][0]:.2f} at start",
        flush=True,
    )
    t_all = time.perf_counter()
    for name in cfg.suites:
        t0 = time.perf_counter()
        r = SUITES[name](cfg)
        r["suite_s"] = time.perf_counter() - t0
        print(r.pop("table") + f"\n\n({name}: {r['suite_s']:.0f} s)", flush=True)
        results[name] = r
        results["total_s"] = time.perf_counter() - t_all
        m["load_avg_end"] = list(os.getloadavg())
        if args.json:  # after every suite: a failure later keeps what was measured
            args.json.write_text(json.dumps(results, indent=2))
    print(f"\ntotal {results['total_s']:.0f} s; load average {m['load_avg_end'][0]:.2f} at the end")
    if args.json:
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
