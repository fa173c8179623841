"""Geometry metrics on synthetic cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from engine.evaluation.geometry import expected_genus, score, topology, true_mesh
from engine.world.scene import ObjectSpec

CUBE = ObjectSpec("cube", "red", scale=0.9)


def _moved(mesh: trimesh.Trimesh, yaw_deg: float, scale: float, shift) -> trimesh.Trimesh:
    m = mesh.copy()
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1]))
    m.apply_scale(scale)
    m.apply_translation(shift)
    return m


@pytest.fixture(scope="module")
def cube() -> trimesh.Trimesh:
    return true_mesh(CUBE, 96)


def test_true_shape_scores_perfect_after_pose_and_scale_fit(cube):
    s = score(_moved(cube, 30.0, 1.4, [0.3, -0.2, 0.5]), cube)
    assert s.chamfer < 0.7
    assert s.normal_consistency > 0.98
    assert s.fscore > 0.99
    assert (s.pieces, s.watertight, s.genus) == (1, True, 0)
    assert s.scale == pytest.approx(1 / 1.4, rel=0.02)
    assert min(abs((s.yaw + 30.0) % 90.0), 90.0 - abs((s.yaw + 30.0) % 90.0)) < 2.0  # a cube: yaw mod 90°


def test_noise_along_normals_costs_normal_consistency(cube):
    clean = score(cube, cube)
    noisy = cube.copy()
    rng = np.random.default_rng(0)
    noisy.vertices = noisy.vertices + noisy.vertex_normals * rng.normal(0.0, 0.01, (len(noisy.vertices), 1))
    bumpy = score(noisy, cube)
    assert clean.normal_consistency > 0.98
    assert bumpy.normal_consistency < clean.normal_consistency - 0.1
    assert bumpy.chamfer < 1.5  # the surface is still in the right place


def test_wrong_shape_loses_on_chamfer_and_fscore(cube):
    sphere = true_mesh(ObjectSpec("sphere", "red", scale=0.9), 96)
    s = score(sphere, cube)
    assert s.chamfer > 1.5
    assert s.fscore < 0.8


def test_topology_of_torus_holes_and_pieces():
    torus = true_mesh(ObjectSpec("torus", "red", scale=0.9), 96)
    t = topology(torus)
    assert (t.pieces, t.watertight, t.genus) == (1, True, 1)
    assert expected_genus(ObjectSpec("torus", "red")) == 1

    box = trimesh.creation.box()
    holed = trimesh.Trimesh(box.vertices, box.faces[2:], process=False)  # one face of the box removed
    t = topology(holed)
    assert not t.watertight and t.boundary_edges == 4 and t.genus is None

    two = trimesh.util.concatenate([box, _moved(box, 0.0, 1.0, [3.0, 0.0, 0.0])])
    assert topology(two).pieces == 2


def test_uv_seams_do_not_count_as_holes():
    """Exported meshes are split at UV seams: welding by position must close them again."""
    sphere = trimesh.creation.icosphere(3)
    split = trimesh.Trimesh(
        sphere.vertices[sphere.faces].reshape(-1, 3),
        np.arange(len(sphere.faces) * 3).reshape(-1, 3),
        process=False,
    )
    t = topology(split)
    assert (t.pieces, t.watertight, t.genus) == (1, True, 0)
