"""The solid step: one piece, no cavities, no pin-holes; the rest of the grid untouched."""

from __future__ import annotations

import numpy as np

from engine.evaluation.geometry import topology
from engine.export import MeshExportConfig, export_asset
from engine.export.mesh import density_grid, marching_cubes
from engine.export.solid import solidify
from tests.export.conftest import SMALL
from tests.export.fields import CrustField, SpheresField


def test_crust_becomes_one_closed_piece():
    field = CrustField()
    sigma = density_grid(field, 96)
    iso = 250.0
    raw = topology(marching_cubes(sigma, iso, 1.0))
    assert raw.pieces >= 3 and raw.genus != 0  # floater, inner pocket, a tunnel: the defects are there

    fixed, stats = solidify(sigma, iso, close_voxels=1)
    t = topology(marching_cubes(fixed, iso, 1.0))
    assert (t.pieces, t.watertight, t.genus) == (1, True, 0)
    assert stats.regions >= 2 and stats.cells_removed > 0 and stats.cells_filled > 0
    changed = (fixed > iso) != (sigma > iso)
    assert changed.mean() < 0.01  # only the defects were edited
    assert np.array_equal(fixed[~changed], sigma[~changed])


def test_wide_openings_survive():
    """A torus's hole is far wider than the closing: its genus stays 1."""
    ring = SpheresField(
        spheres=tuple(
            ((0.45 * np.cos(a), 0.45 * np.sin(a), 0.0), 0.17)
            for a in np.linspace(0, 2 * np.pi, 40, endpoint=False)
        )
    )
    sigma = density_grid(ring, 96)
    fixed, _ = solidify(sigma, 250.0, close_voxels=1)
    assert topology(marching_cubes(fixed, 250.0, 1.0)).genus == 1


def test_export_of_a_crust_is_one_valid_watertight_piece(tmp_path):
    from tests.export.gltf_validator import errors_and_warnings, validate

    r = export_asset(CrustField(), MeshExportConfig(**{**SMALL, "resolution": 96}), tmp_path / "crust.glb")
    from engine.evaluation.geometry import load_asset

    t = topology(load_asset(r.paths["glb"]))
    assert (t.pieces, t.watertight, t.genus) == (1, True, 0), t
    assert errors_and_warnings(validate(r.paths["glb"])) == []
