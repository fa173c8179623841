"""Engine benchmarks: one section per component, each a function that returns a dict of numbers.

    python scripts/bench.py                                  # every section
    python scripts/bench.py --sections hashgrid --points 131072 --repeats 5 --json bench.json

Numbers quoted in docs and notes come from this script. Each section prints a small table; ``--json`` writes
``{"machine": {...}, "<section>": {...}}``.

Sections
    sds        full SDS training steps per second (occupancy update, render, prior CFG, backward, Adam) at
               32² and 64² renders, with a tiny random 32 px pixel prior.
    hashgrid   hash-grid encoding throughput (points/s, forward and forward+backward) of the fast torch grid
               eager and compiled, against the naive reference in ``tests/fields/reference_hashgrid.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: engine/ and tests/

import torch  # noqa: E402

import engine  # noqa: E402  (sets THP_MEM_ALLOC_ENABLE; torch reads it at its first big allocation, below)
from engine.fields import hashgrid  # noqa: E402
from engine.fields.hashgrid import HashGridConfig, TorchHashGrid  # noqa: E402
from tests.fields.reference_hashgrid import reference_encode  # noqa: E402


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


# ----------------------------------------------------------------------------------------------- hashgrid


def bench_hashgrid(args: argparse.Namespace) -> dict[str, Any]:
    """Points/s of the hash grid (default config, uniform random points), median over ``args.repeats``.

    "fwd+bwd" is one forward and one backward with a random upstream gradient, as in training; "fwd" runs
    under no_grad, as the occupancy-grid updates do. The compiled grid's first call (cold compile) is timed
    separately and not part of the throughput.
    """
    n = args.points
    cfg = HashGridConfig(implementation="torch")
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
        "fast eager": (eager, eager),
        "fast compiled": (compiled, compiled),
        "naive reference": (eager, lambda p: reference_encode(eager, p)),
    }
    result: dict[str, Any] = {
        "points": n,
        "repeats": args.repeats,
        "config": dataclasses.asdict(cfg),
        "compiled_first_call_s": round(first_call_s, 2),
        "compile_worked": compiled_ok,
    }
    for name, (grid, encode) in impls.items():
        fwd_bwd(grid, encode)()  # warm-up
        fwd(encode)()
        result[name] = {
            "fwd_bwd_pts_per_s": n / statistics.median(_time(fwd_bwd(grid, encode), args.repeats)),
            "fwd_pts_per_s": n / statistics.median(_time(fwd(encode), args.repeats)),
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
                f"{r['fwd_bwd_vs_naive']:.1f}x",
            ]
        )
    _print_table(
        f"hash grid: {n} points, L={cfg.n_levels} F={cfg.n_features_per_level} T=2^{cfg.log2_hashmap_size}, "
        f"median of {args.repeats}; compiled first call {first_call_s:.1f} s"
        + ("" if compiled_ok else " (compile FAILED: eager numbers)"),
        ["implementation", "fwd Mpts/s", "fwd+bwd Mpts/s", "fwd+bwd vs naive"],
        rows,
    )
    return result


# ----------------------------------------------------------------------------------------------- sds


def bench_sds(args: argparse.Namespace) -> dict[str, Any]:
    """SDS iterations/s of the full training step (occupancy update, render, prior CFG, backward, Adam)
    at several render sizes, with a random tiny pixel prior at 32 px (the built-in prior's native size)."""
    import tempfile

    from engine.config import build_config
    from engine.priors.pixel import PixelPriorConfig
    from engine.train import Trainer
    from tests.priors.tiny import build_tiny_pixel_prior

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        prior_dir = build_tiny_pixel_prior(Path(tmp) / "prior", sample_size=32)
        prior = PixelPriorConfig(str(prior_dir)).setup("cpu")
        for size in args.sds_sizes:
            cfg = build_config(
                "a red cube",
                prior="bench",
                overrides={
                    "train.render_size": size,
                    "train.steps": args.sds_warmup + args.sds_steps,
                    "train.checkpoint_every": 0,
                    "train.preview_every": 0,
                    "field.grid.compile": not args.no_compile,
                },
            )
            trainer = Trainer(cfg, prior, Path(tmp) / f"run{size}")
            for _ in range(args.sds_warmup):  # compile + occupancy settle
                trainer.train_step()
            samples = 0
            t0 = time.perf_counter()
            for _ in range(args.sds_steps):
                samples += trainer.train_step()["samples"]
            dt = time.perf_counter() - t0
            results[f"{size}px"] = {
                "it_per_s": args.sds_steps / dt,
                "field_samples_per_it": samples / args.sds_steps,
            }
    _print_table(
        f"SDS training step (batch 1, tiny random 32 px prior, compile={not args.no_compile}), "
        f"{args.sds_steps} steps after {args.sds_warmup} warm-up",
        ["render size", "it/s", "field samples/it"],
        [[k, f"{v['it_per_s']:.2f}", f"{v['field_samples_per_it']:.0f}"] for k, v in results.items()],
    )
    return results


# ----------------------------------------------------------------------------------------------- main

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "hashgrid": bench_hashgrid,
    "sds": bench_sds,
}


def machine_info() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "engine": engine.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--points", type=int, default=2**17, help="points per batch (hashgrid)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--sds-sizes", type=int, nargs="+", default=[32, 64], help="render sizes (sds)")
    parser.add_argument("--sds-steps", type=int, default=40, help="timed training steps per size (sds)")
    parser.add_argument(
        "--sds-warmup", type=int, default=10, help="untimed steps first: compile, occupancy (sds)"
    )
    parser.add_argument("--no-compile", action="store_true", help="eager hash grid in the sds section")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    results: dict[str, Any] = {"machine": machine_info()}
    for name in args.sections:
        results[name] = SECTIONS[name](args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
