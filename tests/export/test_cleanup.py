"""Floater removal, outward winding and decimation (engine/export/cleanup.py)."""

import numpy as np
import trimesh

from engine.export import MeshExportConfig
from engine.export.cleanup import clean, decimate
from engine.export.mesh import extract_mesh
from tests.export.fields import SpheresField


def test_floaters_are_dropped_and_the_body_kept():
    field = SpheresField(spheres=(((0.0, 0.0, 0.0), 0.5), ((0.8, 0.8, 0.8), 0.06)))
    mesh = extract_mesh(field, MeshExportConfig(resolution=64))
    assert len(mesh.split(only_watertight=False)) == 2
    out, stats = clean(mesh, min_component=0.05, smooth_iterations=0)
    assert stats.components == 2 and stats.dropped_components == 1
    assert np.linalg.norm(out.vertices, axis=1).max() < 0.6


def test_inside_out_pieces_are_flipped():
    a = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    b = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    b.apply_translation([0.7, 0, 0])
    b.invert()
    out, stats = clean(trimesh.util.concatenate([a, b]), min_component=0.0, smooth_iterations=0)
    assert stats.flipped_components == 1
    assert all(p.volume > 0 for p in out.split(only_watertight=False))


def test_smoothing_keeps_the_size():
    mesh = extract_mesh(
        SpheresField(spheres=(((0, 0, 0), 0.5),), sharpness=2000.0), MeshExportConfig(resolution=48)
    )
    rough, _ = clean(mesh, 0.05, smooth_iterations=0)
    smooth, _ = clean(mesh, 0.05, smooth_iterations=5)
    r0, r1 = np.linalg.norm(rough.vertices, axis=1), np.linalg.norm(smooth.vertices, axis=1)
    assert abs(r1.mean() - r0.mean()) < 0.003  # Taubin does not shrink…
    assert r1.std() < 0.7 * r0.std()  # …but evens out the voxel steps


def test_decimation_reaches_the_target():
    mesh = extract_mesh(SpheresField(), MeshExportConfig(resolution=64))
    assert len(mesh.faces) > 8000
    out = decimate(mesh, 3000)
    assert abs(len(out.faces) - 3000) <= 30
    assert out.volume > 0.9 * mesh.volume
    assert decimate(mesh, 0) is mesh
