"""Multiresolution hash-grid encoding (instant-NGP, Müller et al. 2022), fast on CPU.

``HashGridConfig.setup(device)`` returns a :class:`HashGridEncoding`: tiny-cuda-nn's fused grid on CUDA when it is
installed (``engine.fields.hashgrid_tcnn``), otherwise :class:`TorchHashGrid` (``engine.fields.hashgrid_torch``),
which is pure torch and uses ``torch.compile`` when it works. This module owns the typed config and the choice
between them; every public name of the encoding is importable from here.

A point x ∈ [0, 1]^3 is looked up in L grids of growing resolution. Level l has resolution

    N_l = floor(N_min · b^l + 1e-6),   b = exp((ln N_max − ln N_min) / (L − 1))

(the 1e-6 absorbs float rounding so that N_max itself is reached: 16 · 64^(15/15) evaluates to 1023.99…).
A level has (N_l + 1)^3 vertices with integer coordinates 0..N_l. The cell of x is lo = min(floor(x N_l), N_l − 1)
per axis and the trilinear weights come from t = x N_l − lo ∈ [0, 1], so x = 1 lands on the far face of the
last cell. Each level owns a table of T = 2^log2_hashmap_size rows of F features. A vertex v = (i, j, k) maps
to a row by

* dense levels, where (N_l + 1)^3 <= T: row = i + j (N_l + 1) + k (N_l + 1)^2 (no collisions);
* hashed levels: row = (i · 1 XOR j · 2654435761 XOR k · 805459861) mod T (instant-NGP's spatial hash).

The encoding is the concatenation over levels of the trilinear interpolation of the 8 corner rows:
output column l·F + f is feature f of level l. Inputs outside [0, 1] are clamped to the box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import torch

from engine.configbase import Config, setting
from engine.fields.hashgrid_base import HASH_PRIMES, HashGridEncoding, level_resolutions
from engine.fields.hashgrid_tcnn import TcnnHashGrid, tcnn_unavailable
from engine.fields.hashgrid_torch import TorchHashGrid

__all__ = [
    "HASH_PRIMES",
    "HashGridConfig",
    "HashGridEncoding",
    "TcnnHashGrid",
    "TorchHashGrid",
    "level_resolutions",
    "make_hash_grid",
]

log = logging.getLogger(__name__)


@dataclass
class HashGridConfig(Config):
    """Multiresolution hash-grid encoding (instant-NGP)."""

    n_levels: int = setting(16, ge=1, serve=(1, 32))
    """Number of resolution levels L."""
    n_features_per_level: int = setting(2, ge=1, serve=(1, 8))
    """Features per level F; the encoding outputs L*F values per point."""
    log2_hashmap_size: int = setting(17, ge=1, le=26, serve=(8, 24))
    """log2 of the hash table size T per level (instant-NGP uses 19; 17 keeps CPU memory/cache small)."""
    base_resolution: int = setting(16, ge=1, serve=(2, 4096))
    """Coarsest grid resolution N_min."""
    max_resolution: int = setting(1024, ge=1, serve=(2, 32768))
    """Finest grid resolution N_max; per-level growth b = exp((ln N_max - ln N_min)/(L-1))."""
    implementation: Literal["auto", "torch", "tcnn"] = "auto"
    """auto: tiny-cuda-nn when importable and on CUDA, else the pure-torch grid."""
    compile: bool = True
    """torch.compile the torch path when available (falls back to eager with one log line if compile fails)."""
    init_scale: float = setting(1e-4, ge=0.0)
    """Table entries are initialised U(-init_scale, init_scale) (instant-NGP)."""

    def check(self) -> None:
        if not self.base_resolution <= self.max_resolution:
            raise ValueError(
                f"base_resolution must not exceed max_resolution (got {self.base_resolution} > {self.max_resolution})"
            )

    def setup(
        self, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> HashGridEncoding:
        """Build the encoding on ``device`` with the implementation this config asks for; the initial table
        comes from ``generator`` (a CPU generator) when given, else from torch's global generator."""
        return make_hash_grid(self, device, generator)


def make_hash_grid(
    cfg: HashGridConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None
) -> HashGridEncoding:
    """The implementation ``cfg.implementation`` asks for; ``auto`` prefers tiny-cuda-nn, else pure torch."""
    cfg.validate()
    device = torch.device(device)
    if cfg.implementation == "torch":
        return TorchHashGrid(cfg, device, generator)
    reason = tcnn_unavailable(device)
    if cfg.implementation == "tcnn":
        if reason is not None:
            raise ValueError(
                f"implementation='tcnn' needs tiny-cuda-nn on a CUDA device, but {reason}; "
                "use implementation='torch' or 'auto'"
            )
        return TcnnHashGrid(cfg, device, generator)
    if reason is None:
        return TcnnHashGrid(cfg, device, generator)
    # On a CUDA machine the user may want to install tiny-cuda-nn; on CPU the torch grid is the only option.
    log.log(
        logging.INFO if device.type == "cuda" else logging.DEBUG,
        "hash grid: using the pure-torch grid (%s)",
        reason,
    )
    return TorchHashGrid(cfg, device, generator)
