"""Hash-grid encoding throughput: points/s, forward (no grad) and forward+backward, of the fast torch grid,
eager and compiled, against the naive reference in ``tests/fields/reference_hashgrid.py``; the calls are
interleaved round by round and medians reported, and the compiled grid's first call (the compile) is timed
on its own.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from scripts.benchmarks.common import _time, markdown_table
from scripts.benchmarks.config import BenchConfig


def bench_hashgrid(cfg: BenchConfig) -> dict[str, Any]:
    """Points/s of the hash grid (default config, uniform random points), median over ``repeats``.

    "fwd+bwd" is one forward and one backward with a random upstream gradient, as in training; "fwd" runs
    under no_grad, as the occupancy-grid updates do. The compiled grid's first call (compile) is timed
    separately and not part of the throughput.
    """
    from engine.fields import hashgrid_torch
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
    compiled_ok = not hashgrid_torch._KERNELS.failed
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
