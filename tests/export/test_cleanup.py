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


def _closed_box_with_a_sliver() -> trimesh.Trimesh:
    """A closed box in which one edge a–c carries a zero-area triangle (a, c, m), m the midpoint of a–c: on one
    side the face (a, b, c), on the other (a, m, d) + (m, c, d). Marching cubes makes such slivers when a
    surface vertex lands exactly on a line through two others."""
    box = trimesh.creation.box()
    f, v = box.faces.copy(), box.vertices.copy()
    i, j = box.face_adjacency[0]
    shared = box.face_adjacency_edges[0]
    # Orient so that face i runs a → b → c → a with the shared edge as c → a.
    fi = list(f[i])
    k = next(k for k in range(3) if {fi[k], fi[(k + 1) % 3]} == set(shared))
    c, a = fi[k], fi[(k + 1) % 3]
    (d,) = set(f[j]) - set(shared)
    m = len(v)
    v = np.vstack([v, (v[a] + v[c]) / 2])
    faces = [tuple(x) for n, x in enumerate(f) if n != j]
    faces += [(a, m, d), (m, c, d), (a, c, m)]
    return trimesh.Trimesh(v, np.array(faces), process=False)


def test_cleanup_keeps_a_closed_surface_closed_across_zero_area_slivers():
    from engine.export.cleanup import is_closed

    mesh = _closed_box_with_a_sliver()
    assert is_closed(mesh) and not mesh.nondegenerate_faces().all()
    out, _ = clean(mesh, min_component=0.0, smooth_iterations=0)
    assert is_closed(out), "dropping the sliver opened the surface"
