"""Steps 1–2 of the export: density grid → iso level → marching-cubes surface (engine frame, Z-up).

The automatic iso level is derived from the field the way the renderer sees it, not a magic constant.
Along every axis-aligned ray through the grid (6 directions) the optical depth τ = Σ σ·Δ is accumulated
from outside; where τ first reaches −ln(1 − opacity) (opacity 0.5 → τ = ln 2) the ray's rendered opacity
crosses 0.5, i.e. that is the visible edge of the object. The density there (interpolated between the two
lattice points) is one vote; the iso level is the median vote. For a hard surface (σ jumps from 0 to S
within one cell) a vote is ln 2 / Δ, the classic "one voxel stops half the light"; for a soft field it is
where the soft shell becomes visible. So the mesh outline matches the previews at any grid resolution.
"""

from __future__ import annotations

import math
from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh

from engine.export.config import MeshExportConfig
from engine.export.gltf import atomic_write, write_glb  # noqa: F401  (re-exported: the older API)

__all__ = [
    "EmptySurfaceError",
    "MeshExportConfig",
    "auto_iso_level",
    "check_grid_memory",
    "density_grid",
    "extract_mesh",
    "marching_cubes",
    "write_glb",
    "atomic_write",
]

BYTES_PER_CELL = 16
"""Peak bytes per grid cell: the float32 grid, one float32 cumsum and masks for the iso level, a zero-padded
copy for marching cubes (tracemalloc measured 14 at N = 128 for a box-sized sphere; 2 more for headroom)."""


class EmptySurfaceError(ValueError):
    """Marching cubes would find nothing (or only the box): the message names the setting to change."""


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_grid_memory(resolution: int, available: int | None = None) -> None:
    """Refuse a grid that does not fit in (half of) the free memory, before allocating anything."""
    need = BYTES_PER_CELL * (resolution + 3) ** 3
    available = _available_memory() if available is None else available
    if available is not None and need > available // 2:
        raise ValueError(
            f"export resolution {resolution} needs about {need / 2**30:.1f} GiB for the density grid but only "
            f"{available / 2**30:.1f} GiB is free: lower --export.resolution (memory grows as N³)"
        )


def _device(field: torch.nn.Module) -> torch.device:
    p = next(field.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def density_grid(field, resolution: int, chunk: int = 1 << 16) -> np.ndarray:
    """σ at the (N+1)³ lattice points spanning [-bound, bound]³, shape [N+1, N+1, N+1] indexed (x, y, z)."""
    device = _device(field)
    n = resolution + 1
    lin = torch.linspace(-field.bound, field.bound, n, device=device)
    out = np.empty((n, n, n), dtype=np.float32)
    gy, gz = torch.meshgrid(lin, lin, indexing="ij")
    yz = torch.stack([gy, gz], -1).reshape(-1, 2)
    for i, x in enumerate(lin):  # one x-slice at a time keeps memory flat
        pts = torch.cat([x.expand(yz.shape[0], 1), yz], -1)
        vals = torch.cat([field.density(p) for p in pts.split(chunk)])
        out[i] = vals.float().reshape(n, n).cpu().numpy()
    return out


def auto_iso_level(sigma: np.ndarray, voxel: float, opacity: float = 0.5) -> float:
    """Median density where axis-aligned rays reach ``opacity`` (see the module doc)."""
    target = -math.log1p(-opacity)
    votes = []
    for axis in range(3):
        for flip in (False, True):
            s = np.flip(sigma, axis) if flip else sigma
            s = np.moveaxis(s, axis, 0)  # march along the first axis
            tau = np.cumsum(s, axis=0, dtype=np.float32) * np.float32(voxel)
            reached = tau[-1] >= target
            if not reached.any():
                continue
            k = np.argmax(tau >= target, axis=0)[reached]  # first lattice point past the target
            rows = np.nonzero(reached)
            tau_k, s_k = tau[(k, *rows)], s[(k, *rows)]
            km = np.maximum(k - 1, 0)
            tau_p = np.where(k > 0, tau[(km, *rows)], 0.0)
            s_p = np.where(k > 0, s[(km, *rows)], 0.0)
            frac = (target - tau_p) / np.maximum(tau_k - tau_p, 1e-12)
            votes.append(s_p + frac * (s_k - s_p))
            del tau
    if not votes:
        raise EmptySurfaceError(
            f"the field is transparent: no ray through the scene box reaches opacity {opacity} "
            f"(max σ = {float(sigma.max()):.3g}); train longer, or set --export.iso-density below the max σ"
        )
    return float(np.median(np.concatenate(votes)))


def marching_cubes(sigma: np.ndarray, iso: float, bound: float) -> trimesh.Trimesh:
    """Closed surface {σ = iso} in scene coordinates, faces wound counter-clockwise seen from outside.

    The grid is padded with a layer of zeros (the field is empty outside the box), so a surface cut by the
    box is closed by a cap on the box wall instead of being left open.
    """
    inside = sigma > iso
    n_in = int(inside.sum())
    if n_in == 0:
        raise EmptySurfaceError(
            f"no surface: the density never exceeds the iso level {iso:.3g} (max σ = {float(sigma.max()):.3g}); "
            "lower --export.iso-density (or leave it unset for the automatic level), or train longer"
        )
    shell = np.concatenate(
        [inside[[0, -1]].ravel(), inside[:, [0, -1]].ravel(), inside[:, :, [0, -1]].ravel()]
    )
    if n_in == inside.size or shell.mean() > 0.9:
        raise EmptySurfaceError(
            f"the surface fills the whole scene box at iso level {iso:.3g} ({shell.mean():.0%} of the box wall is "
            "inside): raise --export.iso-density (the field is fog-like; training longer also helps)"
        )
    res = sigma.shape[0] - 1
    verts, faces = mcubes.marching_cubes(np.pad(sigma, 1), iso)
    verts = np.clip((verts - 1.0) * (2.0 * bound / res) - bound, -bound, bound)
    # PyMCubes winds faces counter-clockwise seen from the side where the field is below the iso level.
    return trimesh.Trimesh(verts, faces, process=True)


def extract_mesh(field, cfg: MeshExportConfig) -> trimesh.Trimesh:
    """Grid → iso level → marching cubes, without cleanup (engine frame, Z-up, no colours)."""
    cfg.validate()
    check_grid_memory(cfg.resolution)
    sigma = density_grid(field, cfg.resolution, cfg.chunk)
    voxel = 2.0 * field.bound / cfg.resolution
    iso = cfg.iso_density if cfg.iso_density is not None else auto_iso_level(sigma, voxel, cfg.iso_opacity)
    return marching_cubes(sigma, iso, field.bound)
