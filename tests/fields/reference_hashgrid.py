"""A deliberately plain hash-grid encoding, written from the instant-NGP paper, to check the fast one against.

One level at a time, one cell corner at a time, int64 arithmetic with the full hash products, autograd for the
gradient. It shares nothing with ``engine.fields.hashgrid`` except the documented conventions and the table it
reads (``grid.embeddings``, [L, T, F]):

* N_l = floor(N_min · b^l + 1e-6) with b = exp((ln N_max − ln N_min) / (L − 1));
* the cell of x is lo = min(floor(x N_l), N_l − 1) per axis, and t = x N_l − lo are the trilinear weights;
* vertex (i, j, k) of a level with (N_l + 1)^3 <= T sits at row i + j (N_l + 1) + k (N_l + 1)^2, otherwise at row
  (i · 1 XOR j · 2654435761 XOR k · 805459861) mod T;
* output column l·F + f is feature f of level l; points are clamped to [0, 1]^3.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from engine.fields.hashgrid import TorchHashGrid

PRIMES = (1, 2654435761, 805459861)


def reference_resolutions(n_levels: int, base_resolution: int, max_resolution: int) -> list[int]:
    if n_levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
    return [math.floor(base_resolution * growth**level + 1e-6) for level in range(n_levels)]


def vertex_rows(vertices: Tensor, resolution: int, table_size: int) -> Tensor:
    """Row of each integer vertex [N, 3] (int64) in its level's table."""
    i, j, k = vertices.unbind(-1)
    side = resolution + 1
    if side**3 <= table_size:
        return i + j * side + k * side * side
    return ((i * PRIMES[0]) ^ (j * PRIMES[1]) ^ (k * PRIMES[2])) % table_size


def reference_encode(grid: TorchHashGrid, x: Tensor) -> Tensor:
    """[N, 3] points → [N, L·F] features, differentiable with respect to ``grid.embeddings``."""
    cfg = grid.cfg
    table = grid.embeddings
    table_size = table.shape[1]
    x = x.to(torch.float32).clamp(0.0, 1.0)
    levels = []
    for level, res in enumerate(reference_resolutions(cfg.n_levels, cfg.base_resolution, cfg.max_resolution)):
        pos = x * float(res)
        lo = torch.clamp(pos.floor(), max=res - 1)
        t = pos - lo
        lo = lo.to(torch.int64)
        feature = torch.zeros(x.shape[0], table.shape[2])
        for corner in itertools.product((0, 1), repeat=3):  # (dx, dy, dz)
            step = torch.tensor(corner)
            weight = torch.where(step == 1, t, 1.0 - t).prod(-1)
            rows = vertex_rows(lo + step, res, table_size)
            feature = feature + weight[:, None] * table[level, rows]
        levels.append(feature)
    return torch.cat(levels, dim=-1)
