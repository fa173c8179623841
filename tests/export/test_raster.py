"""The shared CPU triangle coverage (engine/export/raster.py)."""

import numpy as np

from engine.export.raster import cover


def test_two_triangles_tile_a_square_exactly_once():
    tri = np.array([[[0, 0], [8, 0], [8, 8]], [[0, 0], [8, 8], [0, 8]]], float) + 1.0  # square 1..9 on 12²
    f = cover(tri, 12, 12, max_candidates=10)  # tiny groups exercise the chunking
    counts = np.bincount(f.pixel, minlength=144).reshape(12, 12)
    assert (counts[1:9, 1:9] >= 1).all() and counts.sum() - (counts[1:9, 1:9] > 0).sum() <= 8  # diagonal ties
    assert counts[0].sum() == 0 and counts[:, 9:].sum() == 0
    np.testing.assert_allclose(f.bary.sum(1), 1.0, atol=1e-6)
    # Barycentrics reproduce the pixel centres.
    centres = np.stack([f.pixel % 12 + 0.5, f.pixel // 12 + 0.5], -1)
    np.testing.assert_allclose(np.einsum("kc,kcd->kd", f.bary, tri[f.triangle]), centres, atol=1e-5)


def test_grow_adds_the_border_ring_with_points_on_the_triangle():
    tri = np.array([[[2.2, 2.2], [6.8, 2.2], [2.2, 6.8]]])
    plain, grown = cover(tri, 10, 10), cover(tri, 10, 10, grow=0.75)
    assert set(plain.pixel) < set(grown.pixel)
    assert (grown.bary >= 0).all()
    assert len(cover(np.array([[[1, 1], [2, 2], [3, 3]]], float), 10, 10).pixel) == 0  # degenerate
