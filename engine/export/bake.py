"""Step 6 of the export: bake the field's albedo into the UV atlas on the CPU.

Every triangle is rasterized in texel space (``raster.cover``, conservatively: texels whose centre lies up
to ``GROW`` texels outside a triangle count too, with barycentrics clamped onto it, so texels cut by a
chart border get real surface colours). Each texel's barycentrics give its 3-D surface point, where the
field's albedo is queried: diffuse colour only, no view-dependent effect and no lighting baked in. The
albedo is what the renderer composites and the prior sees, i.e. display-referred (sRGB-encoded) values,
which is what glTF's baseColorTexture stores.

Texels outside every chart are then filled so that bilinear filtering at seams and the coarser mip levels
never mix in a background colour: ``RINGS`` rings of 8-neighbour averages around the charts, then a
push-pull pyramid (average down to 1×1, then fill holes from the coarser level on the way up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.export.raster import cover
from engine.export.uv import UVMesh

GROW = 0.75
"""Conservative rasterization margin in texels (≈ half a texel diagonal); kept below half the chart gap."""
RINGS = 2
"""Rings of neighbour-average dilation around the charts before the push-pull fill."""


@dataclass
class BakeResult:
    texture: np.ndarray
    """[S, S, 3] uint8, row 0 at the top (v = 1)."""
    coverage: float
    """Fraction of texels inside charts (the rest is filled)."""


def uv_to_pixel(uvs: np.ndarray, size: int) -> np.ndarray:
    """UV (origin bottom-left, v up) → continuous pixel coordinates (x right, y down from the top row)."""
    return np.stack([uvs[..., 0] * size, (1.0 - uvs[..., 1]) * size], -1)


@torch.no_grad()
def query_albedo(field, points: np.ndarray, chunk: int) -> np.ndarray:
    p = next(field.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    x = torch.as_tensor(points, dtype=torch.float32, device=device)
    if len(x) == 0:
        return np.zeros((0, 3), np.float32)
    return torch.cat([field.albedo(c) for c in x.split(chunk)]).float().cpu().numpy()


def _dilate(col: np.ndarray, valid: np.ndarray, rings: int) -> None:
    """In place: give invalid texels next to valid ones the mean of their valid 8-neighbours, ``rings`` times."""
    h, w = valid.shape
    for _ in range(rings):
        pc = np.pad(col * valid[..., None], ((1, 1), (1, 1), (0, 0)))
        pv = np.pad(valid, 1).astype(np.float32)
        acc = np.zeros_like(col)
        cnt = np.zeros((h, w), np.float32)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    acc += pc[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                    cnt += pv[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        new = ~valid & (cnt > 0)
        col[new] = acc[new] / cnt[new, None]
        valid |= new


def _push_pull(col: np.ndarray, valid: np.ndarray) -> None:
    """In place: fill every invalid texel from the coarsest pyramid level that has data there."""
    levels = [(col * valid[..., None], valid.astype(np.float32))]
    while levels[-1][1].shape[0] > 1:
        c, w = levels[-1]
        h2 = c.shape[0] // 2
        levels.append((c.reshape(h2, 2, h2, 2, 3).sum((1, 3)), w.reshape(h2, 2, h2, 2).sum((1, 3))))
    c, w = levels[-1]
    fill = c / np.maximum(w, 1e-12)[..., None]
    for c, w in reversed(levels[:-1]):
        up = np.repeat(np.repeat(fill, 2, 0), 2, 1)
        fill = np.where(w[..., None] > 0, c / np.maximum(w, 1e-12)[..., None], up)
    col[~valid] = fill[~valid]


def bake_texture(field, mesh: UVMesh, size: int, chunk: int = 1 << 16) -> BakeResult:
    """Albedo texture of ``mesh`` (engine-frame positions) at ``size``² texels, every texel filled."""
    grow = min(GROW, 0.45 * mesh.gap)  # two charts' margins never reach the same texel
    frags = cover(uv_to_pixel(mesh.uvs[mesh.faces], size), size, size, grow=grow)
    # Where triangles overlap (shared edges, conservative margins) keep the fragment deepest inside one.
    order = np.lexsort((-frags.bary.min(1), frags.pixel))
    pixel = frags.pixel[order]
    first = np.ones(len(pixel), bool)
    first[1:] = pixel[1:] != pixel[:-1]
    pixel, tri, bary = pixel[first], frags.triangle[order][first], frags.bary[order][first]
    corners = mesh.positions[mesh.faces[tri]]  # [K, 3, 3]
    points = np.einsum("kc,kcd->kd", bary, corners)
    albedo = query_albedo(field, points, chunk)
    col = np.zeros((size * size, 3), np.float32)
    col[pixel] = albedo
    valid = np.zeros(size * size, bool)
    valid[pixel] = True
    col, valid = col.reshape(size, size, 3), valid.reshape(size, size)
    coverage = float(valid.mean())
    if coverage == 0.0:
        raise ValueError("texture bake covered no texel: the UV atlas is empty")
    _dilate(col, valid, RINGS)
    _push_pull(col, valid)
    texture = (np.clip(col, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return BakeResult(texture, coverage)
