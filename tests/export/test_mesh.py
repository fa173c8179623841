"""Density grid, automatic iso level and marching cubes (engine/export/mesh.py)."""

import math

import numpy as np
import pytest
import torch

from engine.export import EmptySurfaceError, MeshExportConfig
from engine.export.mesh import auto_iso_level, check_grid_memory, density_grid, extract_mesh, marching_cubes
from tests.export.fields import ConstantField, SpheresField


class _Ramp(torch.nn.Module):
    """σ = 1 + x + 10 y + 100 z: tells the grid's axis order apart."""

    bound = 1.0

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def density(self, x):
        return 1 + x[:, 0] + 10 * x[:, 1] + 100 * x[:, 2]


def test_density_grid_is_indexed_x_y_z_over_the_box():
    grid = density_grid(_Ramp(), 8, chunk=7)
    lin = np.linspace(-1, 1, 9)
    x, y, z = np.meshgrid(lin, lin, lin, indexing="ij")
    np.testing.assert_allclose(grid, 1 + x + 10 * y + 100 * z, rtol=1e-5, atol=1e-4)


def test_hard_sphere_lands_on_its_radius_with_outward_normals():
    field = SpheresField(spheres=(((0.1, -0.05, 0.0), 0.5),), sharpness=2000.0)
    mesh = extract_mesh(field, MeshExportConfig(resolution=64))
    voxel = 2.0 / 64
    r = np.linalg.norm(mesh.vertices - [0.1, -0.05, 0.0], axis=1)
    assert abs(r.mean() - 0.5) < voxel, r.mean()
    assert mesh.is_watertight and mesh.volume > 0
    outward = np.einsum("ij,ij->i", mesh.vertex_normals, mesh.vertices - [0.1, -0.05, 0.0])
    assert (outward > 0).mean() > 0.99


def test_auto_iso_of_a_step_is_one_voxel_stopping_half_the_light():
    sigma = np.zeros((33, 33, 33), np.float32)
    sigma[8:25, 8:25, 8:25] = 1e4
    voxel = 2.0 / 32
    assert auto_iso_level(sigma, voxel, 0.5) == pytest.approx(math.log(2) / voxel, rel=1e-3)


def test_auto_iso_is_stable_across_grid_resolutions():
    field = SpheresField()
    isos = [auto_iso_level(density_grid(field, n), 2.0 / n) for n in (48, 96)]
    radii = []
    for n, iso in zip((48, 96), isos):
        m = marching_cubes(density_grid(field, n), iso, 1.0)
        radii.append(-m.vertices[:, 2].min())
    assert abs(radii[0] - radii[1]) < 2.0 / 48  # the bottom of the snowman moves less than a coarse voxel


def test_surface_cut_by_the_box_is_closed():
    field = SpheresField(spheres=(((0.0, 0.0, -1.0), 0.6),), sharpness=500.0)
    mesh = extract_mesh(field, MeshExportConfig(resolution=32))
    assert mesh.is_watertight and mesh.vertices[:, 2].min() >= -1.0


def test_empty_field_says_what_to_change():
    with pytest.raises(EmptySurfaceError, match="transparent.*--export.iso-density"):
        extract_mesh(ConstantField(0.0), MeshExportConfig(resolution=16))
    with pytest.raises(EmptySurfaceError, match="lower --export.iso-density"):
        extract_mesh(SpheresField(), MeshExportConfig(resolution=16, iso_density=1e6))


def test_fog_filling_the_box_says_what_to_change():
    with pytest.raises(EmptySurfaceError, match="fills the whole scene box.*raise --export.iso-density"):
        extract_mesh(ConstantField(50.0), MeshExportConfig(resolution=16))


def test_too_large_a_grid_is_refused_before_allocating():
    with pytest.raises(ValueError, match="lower --export.resolution"):
        check_grid_memory(2048, available=8 * 2**30)
    check_grid_memory(128, available=8 * 2**30)
