"""Field → mesh: density grid, marching cubes, vertex colours, and a .glb writer.

The iso-level is physical rather than a magic number: by default the surface sits where one voxel of
medium stops half of the light, i.e. σ_iso = ln 2 / voxel_size (so it scales with the grid).
Coordinates: the engine is Z-up (Blender); glTF is Y-up, so the writer maps (x, y, z) → (x, z, −y),
which Blender's importer maps back.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh

from engine.fields.nerf import NeRFField

# Engine (Z-up) → glTF (Y-up).
Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass
class MeshExportConfig:
    """Marching-cubes mesh extraction."""

    resolution: int = 128
    """Density grid cells per axis over the scene box."""
    iso_density: float | None = None
    """σ at the surface; None: automatic, ln 2 / voxel size."""
    chunk: int = 1 << 16
    """Points per field query while building the grid."""
    max_resolution: int = 512
    """Refuse grids larger than this per axis (memory: 512³ float32 = 0.5 GB)."""


class EmptySurfaceError(ValueError):
    """Marching cubes found nothing (or only the box)."""


@torch.no_grad()
def density_grid(field: NeRFField, resolution: int, chunk: int) -> np.ndarray:
    """σ at the (resolution+1)³ lattice points spanning [-bound, bound]³, shape [N+1, N+1, N+1] (x, y, z)."""
    device = next(field.parameters()).device
    lin = torch.linspace(-field.bound, field.bound, resolution + 1, device=device)
    out = np.empty(((resolution + 1) ** 3,), dtype=np.float32)
    gx, gy = torch.meshgrid(lin, lin, indexing="ij")
    xy = torch.stack([gx, gy], -1).reshape(-1, 2)
    start = 0
    for z in lin:  # one z-slice at a time keeps memory flat
        pts = torch.cat([xy, z.expand(xy.shape[0], 1)], -1)
        vals = torch.cat([field.density(p) for p in pts.split(chunk)])
        out[start : start + len(vals)] = vals.float().cpu().numpy()
        start += len(vals)
    # Filled z-major: reshape to [z, x, y] then move axes to [x, y, z].
    return out.reshape(resolution + 1, resolution + 1, resolution + 1).transpose(1, 2, 0)


def extract_mesh(field: NeRFField, cfg: MeshExportConfig) -> trimesh.Trimesh:
    """Marching-cubes surface with per-vertex albedo colours (engine frame, Z-up)."""
    if cfg.resolution < 8 or cfg.resolution > cfg.max_resolution:
        raise ValueError(
            f"export resolution {cfg.resolution} is out of range: use 8..{cfg.max_resolution} (memory grows as N³)"
        )
    sigma = density_grid(field, cfg.resolution, cfg.chunk)
    voxel = 2.0 * field.bound / cfg.resolution
    iso = cfg.iso_density if cfg.iso_density is not None else math.log(2.0) / voxel
    inside = sigma > iso
    if not inside.any():
        raise EmptySurfaceError(
            f"no surface: the density never exceeds the iso level {iso:.3g} (max {sigma.max():.3g}); "
            "lower export iso_density or train longer"
        )
    if inside.all():
        raise EmptySurfaceError(
            f"the surface fills the whole box at iso level {iso:.3g}; raise export iso_density"
        )
    verts, faces = mcubes.marching_cubes(sigma, iso)
    verts = verts / cfg.resolution * 2.0 * field.bound - field.bound
    device = next(field.parameters()).device
    with torch.no_grad():
        v = torch.as_tensor(verts, dtype=torch.float32, device=device)
        colours = torch.cat([field.albedo(p) for p in v.split(cfg.chunk)]).cpu().numpy()
    # mcubes emits faces wound for a field that is larger *outside*; flip so normals point out of the density.
    mesh = trimesh.Trimesh(verts, faces[:, ::-1], process=True)
    rgba = np.concatenate([colours, np.ones((len(colours), 1))], 1)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=(rgba * 255).round().astype(np.uint8))
    return mesh


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_glb(mesh: trimesh.Trimesh, path: Path) -> None:
    """Write a Y-up binary glTF of an engine-frame mesh."""
    out = mesh.copy()
    out.apply_transform(Z_UP_TO_Y_UP)
    atomic_write(Path(path), trimesh.Scene(out).export(file_type="glb"))
