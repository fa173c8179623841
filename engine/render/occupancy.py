"""Occupancy grid: a coarse bit field of where the density is non-negligible (instant-NGP §4).

Every ``update_every`` steps the field's density is evaluated at jittered cell centres; each cell keeps
max(decay · old, new). Cells above ``density_threshold`` are occupied, and the occupied set is dilated
by one cell so that a surface can still grow outward (a cell that is never rendered would otherwise
never receive the gradient that could make it occupied). The renderer evaluates the field only at
samples that fall in occupied cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn

from engine.configbase import Config, setting


@dataclass
class OccupancyConfig(Config):
    """Empty-space skipping."""

    enabled: bool = True
    """Skip samples in empty cells (turn off only to debug)."""
    resolution: int = setting(48, ge=2, serve=(8, 256))
    """Cells per axis over the scene box."""
    update_every: int = setting(16, ge=1, serve=(1, 20000))
    """Re-evaluate the density grid every N training steps."""
    density_threshold: float = setting(0.05, ge=0.0)
    """σ above which a cell counts as occupied (σ·δ ≈ 0.002 at the default sample spacing)."""
    decay: float = setting(0.9, ge=0.0, le=1.0)
    """EMA-max decay of the stored density per update."""

    def setup(self, bound: float) -> OccupancyGrid:
        return OccupancyGrid(self, bound)


class OccupancyGrid(nn.Module):
    def __init__(self, cfg: OccupancyConfig, bound: float):
        super().__init__()
        self.cfg, self.bound = cfg, bound
        r = cfg.resolution
        self.register_buffer("density", torch.zeros(r, r, r))
        # Everything occupied until the first update: no sample is skipped by a stale grid.
        self.register_buffer("occupied", torch.ones(r, r, r, dtype=torch.bool))

    def cell_centres(self) -> Float[Tensor, "N 3"]:
        r = self.cfg.resolution
        idx = torch.arange(r, dtype=torch.float32, device=self.density.device)
        g = torch.stack(torch.meshgrid(idx, idx, idx, indexing="ij"), -1).reshape(-1, 3)
        return ((g + 0.5) / r * 2.0 - 1.0) * self.bound

    @torch.no_grad()
    def update(self, density_fn, generator: torch.Generator | None = None, chunk: int = 1 << 16) -> None:
        """Refresh from ``density_fn(points[N,3]) -> σ[N]`` at jittered cell centres."""
        if not self.cfg.enabled:
            return
        r = self.cfg.resolution
        pts = self.cell_centres()
        jitter = torch.rand(pts.shape, generator=generator).to(pts.device) - 0.5
        pts = pts + jitter * (2.0 * self.bound / r)
        sigma = torch.cat([density_fn(p) for p in pts.split(chunk)]).reshape(r, r, r)
        self.density.copy_(torch.maximum(self.density * self.cfg.decay, sigma))
        occ = (self.density > self.cfg.density_threshold).float()[None, None]
        self.occupied.copy_(torch.nn.functional.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0)

    def query(self, pts: Float[Tensor, "N 3"]) -> Bool[Tensor, " N"]:
        """Whether each point lies in an occupied cell (points outside the box are not)."""
        if not self.cfg.enabled:
            return torch.ones(pts.shape[0], dtype=torch.bool, device=pts.device)
        r = self.cfg.resolution
        idx = ((pts / self.bound + 1.0) * 0.5 * r).floor().long()
        inside = ((idx >= 0) & (idx < r)).all(-1)
        idx = idx.clamp(0, r - 1)
        return inside & self.occupied[idx[:, 0], idx[:, 1], idx[:, 2]]

    def occupied_fraction(self) -> float:
        return float(self.occupied.float().mean())
