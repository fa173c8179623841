"""Vectorized CPU triangle coverage: which pixel centres each 2-D triangle covers, with barycentrics.

Shared by the texture bake (triangles in texel space) and the turntable preview (triangles in screen
space). Every triangle's bounding box is enumerated at once with numpy (``repeat`` + an arange), then
edge functions keep the pixel centres inside. Triangles are processed in groups so that the candidate
count (Σ bounding-box areas) stays below ``max_candidates`` and memory stays flat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Fragments:
    """Covered pixel centres: one row per (pixel, triangle) pair."""

    pixel: np.ndarray
    """[K] int64 flat pixel index y · width + x."""
    triangle: np.ndarray
    """[K] int64 triangle index."""
    bary: np.ndarray
    """[K, 3] float32 barycentric weights of the pixel centre (each ≥ 0, summing to 1)."""


def _cover_group(tri: np.ndarray, ids: np.ndarray, width: int, height: int, grow: float) -> Fragments:
    lo = np.floor(tri.min(1) - 0.5 - grow).astype(np.int64) + 1  # first pixel whose centre ≥ min − grow
    hi = np.floor(tri.max(1) - 0.5 + grow).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [width - 1, height - 1])
    w = np.maximum(hi[:, 0] - lo[:, 0] + 1, 0)
    h = np.maximum(hi[:, 1] - lo[:, 1] + 1, 0)
    n = w * h
    t = np.repeat(np.arange(len(tri)), n)
    local = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    px = lo[t, 0] + local % w[t]
    py = lo[t, 1] + local // w[t]
    p = np.stack([px + 0.5, py + 0.5], -1)
    a, b, c = tri[t, 0], tri[t, 1], tri[t, 2]

    def edge(u: np.ndarray, v: np.ndarray) -> np.ndarray:  # twice the signed area of (u, v, p)
        return (v[:, 0] - u[:, 0]) * (p[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (p[:, 0] - u[:, 0])

    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    w0, w1, w2 = edge(b, c) / area, edge(c, a) / area, edge(a, b) / area
    bary = np.stack([w0, w1, w2], -1)
    if grow > 0:
        # Signed distance to each edge line in pixels; accept centres up to ``grow`` outside, then clamp the
        # weights onto the triangle so the point used is on the surface.
        lens = np.stack(
            [np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1), np.linalg.norm(b - a, axis=1)], -1
        )
        dist = bary * np.abs(area)[:, None] / np.maximum(lens, 1e-12)
        keep = (dist >= -grow).all(1)
        bary = np.clip(bary[keep], 0.0, None)
        bary /= bary.sum(1, keepdims=True)
    else:
        keep = (bary >= 0).all(1)
        bary = bary[keep]
    return Fragments((py * width + px)[keep], ids[t[keep]], bary.astype(np.float32))


def cover(
    tri: np.ndarray, width: int, height: int, grow: float = 0.0, max_candidates: int = 1 << 22
) -> Fragments:
    """Pixel centres covered by each triangle of ``tri`` [T, 3, 2] (pixel units, x right, y down).

    ``grow`` > 0 also takes centres up to that many pixels outside a triangle (conservative coverage, for
    texture seams), with barycentrics clamped onto the triangle. Degenerate triangles cover nothing.
    """
    tri = np.asarray(tri, dtype=np.float64)
    area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (tri[:, 1, 1] - tri[:, 0, 1]) * (
        tri[:, 2, 0] - tri[:, 0, 0]
    )
    ids = np.nonzero(np.abs(area) > 1e-12)[0]
    ext = tri[ids].max(1) - tri[ids].min(1) + 1.0 + 2 * grow
    cost = np.cumsum(np.prod(np.clip(ext, 1.0, None), 1))
    parts, start = [], 0
    while start < len(ids):
        base = cost[start - 1] if start else 0.0
        stop = max(int(np.searchsorted(cost, base + max_candidates, side="right")), start + 1)
        parts.append(_cover_group(tri[ids[start:stop]], ids[start:stop], width, height, grow))
        start = stop
    if not parts:
        return Fragments(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
    return Fragments(*(np.concatenate([getattr(f, k) for f in parts]) for k in ("pixel", "triangle", "bary")))
