"""Step 2½ of the export: make the density grid describe one solid before marching cubes.

A trained field is not a clean solid: besides the object it holds floaters, air pockets inside the shell and
pin-holes through it, and marching cubes faithfully turns each into extra pieces, inner surfaces or handles.
This step edits the grid so that the set {σ > iso} is

1. **one piece** — the largest 6-connected region is kept; every other region is pushed below the iso level;
2. **without cavities** — empty regions not connected to the outside of the box are filled;
3. **without pin-holes** — a morphological closing (dilation then erosion by a ball of ``close_voxels``) fills
   tunnels and pits narrower than about 2 · close_voxels cells; it leaves convex regions and openings
   wider than that (a torus's hole is ~35 cells at the default resolution) as they are.

Only cells whose side of the iso level must change are edited, and only to just across it, so marching
cubes still interpolates the field's own values everywhere else: the surface keeps its sub-voxel position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass
class SolidStats:
    regions: int
    """6-connected regions of {σ > iso} before the edit (1 for a clean field)."""
    cells_removed: int
    """Inside cells of the dropped regions."""
    cells_filled: int
    """Outside cells made inside (cavities and closed pin-holes)."""


def _ball(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    x, y, z = np.meshgrid(r, r, r, indexing="ij")
    return x * x + y * y + z * z <= radius * radius + 1e-9


def solidify(sigma: np.ndarray, iso: float, close_voxels: int = 1) -> tuple[np.ndarray, SolidStats]:
    """The grid edited so that {σ > iso} is one solid without cavities or pin-holes (see the module doc)."""
    inside = sigma > iso
    labels, n = ndimage.label(inside)  # 6-connectivity: what marching cubes joins without ambiguity
    if n == 0:
        return sigma, SolidStats(0, 0, 0)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    solid = labels == int(sizes.argmax())
    del labels
    if close_voxels > 0:
        pad = close_voxels + 1  # room for the dilation at the box walls, where the field is empty
        solid = ndimage.binary_closing(np.pad(solid, pad), structure=_ball(close_voxels))[
            pad:-pad, pad:-pad, pad:-pad
        ]
    solid = ndimage.binary_fill_holes(solid)
    out = sigma.copy()
    lo, hi = np.float32(iso * 0.999), np.float32(iso * 1.001)
    remove = inside & ~solid
    fill = solid & ~inside
    out[remove] = np.minimum(out[remove], lo)
    out[fill] = np.maximum(out[fill], hi)
    return out, SolidStats(int(n), int(remove.sum()), int(fill.sum()))


__all__ = ["SolidStats", "solidify"]
