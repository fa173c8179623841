"""The renderer against analytic densities: a homogeneous ball has a closed-form opacity per ray."""

import math

import pytest
import torch

from engine.cameras import look_at, orbit_cameras, turntable
from engine.render.occupancy import OccupancyConfig
from engine.render.rays import camera_rays, intersect_box
from engine.render.renderer import RendererConfig, Shading


class Ball(torch.nn.Module):
    """σ = sigma inside a ball of radius r at the origin, 0 outside; constant albedo."""

    def __init__(self, sigma: float, radius: float, albedo=(0.9, 0.2, 0.1)):
        super().__init__()
        self.sigma, self.radius = sigma, radius
        self.register_buffer("colour", torch.tensor(albedo))
        self.dummy = torch.nn.Parameter(torch.zeros(()))  # gives the module a device
        self.queries = 0

    def density(self, x):
        self.queries += x.shape[0]
        return torch.where(x.norm(dim=-1) < self.radius, self.sigma, 0.0) + 0 * self.dummy

    def forward(self, x):
        return self.density(x), self.colour.expand(x.shape[0], 3)


def chord(origins, dirs, radius):
    """Length of each ray's path inside the ball (dirs unit)."""
    b = origins.cross(dirs, dim=-1).norm(dim=-1)  # distance of the line from the origin
    return 2 * torch.sqrt((radius**2 - b**2).clamp(min=0))


def renderer(n_samples=512, occupancy=False, **kw):
    cfg = RendererConfig(n_samples=n_samples, occupancy=OccupancyConfig(enabled=occupancy), **kw)
    return cfg.setup(bound=1.0)


def test_homogeneous_ball_opacity_and_colour_match_closed_form():
    field, r = Ball(sigma=3.0, radius=0.6), renderer()
    cams = turntable(2, elevation=15.0, radius=2.5, fov_deg=50.0)
    out = r.render(field, cams, 24, perturb=False)
    origins, dirs = camera_rays(cams, 24)
    expected = 1 - torch.exp(-3.0 * chord(origins.reshape(-1, 3), dirs.reshape(-1, 3), 0.6))
    got = out.opacity.permute(0, 2, 3, 1).reshape(-1)
    assert (got - expected).abs().max() < 0.02  # midpoint quadrature with 512 samples
    assert expected.max() > 0.9 and expected.min() == 0  # the image covers ball and background
    bg = torch.tensor(RendererConfig().background_color)
    want_rgb = field.colour[:, None] * expected + bg[:, None] * (1 - expected)
    got_rgb = out.rgb.permute(1, 0, 2, 3).reshape(3, -1)
    assert (got_rgb - want_rgb).abs().max() < 0.02


def test_opaque_ball_depth_is_distance_to_surface():
    field, r = Ball(sigma=2000.0, radius=0.5), renderer(n_samples=1024)
    cams = orbit_cameras(torch.tensor([0.0]), torch.tensor([30.0]), torch.tensor([2.0]), torch.tensor([40.0]))
    out = r.render(field, cams, 9, perturb=False)
    centre_depth = out.depth[0, 0, 4, 4]
    assert abs(float(centre_depth) - 1.5) < 0.01  # camera at 2.0, surface at 0.5
    assert float(out.opacity[0, 0, 4, 4]) > 0.999


def test_occupancy_grid_skips_empty_space_without_changing_the_image():
    field = Ball(sigma=5.0, radius=0.4)
    cams = turntable(1, elevation=10.0)
    dense = renderer(n_samples=128)
    out_dense = dense.render(field, cams, 16, perturb=False)
    n_dense = out_dense.n_samples_evaluated
    sparse = renderer(n_samples=128, occupancy=True)
    sparse.occupancy_grid.update(field.density)
    out_sparse = sparse.render(field, cams, 16, perturb=False)
    assert out_sparse.n_samples_evaluated < 0.5 * n_dense
    assert torch.allclose(out_sparse.rgb, out_dense.rgb, atol=1e-5)


def test_rays_miss_box_give_background_and_no_queries():
    field, r = Ball(sigma=5.0, radius=0.5), renderer(n_samples=16)
    eye = torch.tensor([[0.0, -5.0, 3.0]])
    c2w = look_at(eye, torch.tensor([[0.0, -5.0, 10.0]]))  # looking up, away from the box
    from engine.cameras import CameraBatch

    cams = CameraBatch(c2w, torch.tensor([0.5]), torch.zeros(1), torch.zeros(1), torch.ones(1))
    out = r.render(field, cams, 8, perturb=False)
    assert out.n_samples_evaluated == 0
    assert torch.allclose(out.rgb[0, :, 0, 0], torch.tensor(RendererConfig().background_color))


def test_intersect_box_slab():
    o = torch.tensor([[0.0, 0.0, -3.0], [5.0, 5.0, 5.0]])
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    near, far, hit = intersect_box(o, d, 1.0)
    assert hit.tolist() == [True, False]
    assert near[0] == pytest.approx(2.0) and far[0] == pytest.approx(4.0)


def test_lambertian_shading_lights_the_side_facing_the_light():
    field, r = (
        Ball(sigma=500.0, radius=0.5, albedo=(1.0, 1.0, 1.0)),
        renderer(n_samples=256, ambient=0.2, normal_eps=0.02),
    )
    cams = orbit_cameras(torch.zeros(1), torch.zeros(1), torch.tensor([2.5]), torch.tensor([40.0]))
    light = torch.tensor(
        [[1.0, 0.0, 0.0]]
    )  # from +X: the image's right half (camera at -Y looks at +Y, right = +X)
    out = r.render(field, cams, 32, Shading.TEXTURELESS, light, perturb=False)
    row = out.rgb[0, 0, 16]
    assert float(row[22]) > 0.6 and float(row[9]) < 0.3  # lit right side, ambient-only left side
    albedo = r.render(field, cams, 32, Shading.ALBEDO, perturb=False)
    assert float(albedo.rgb[0, 0, 16, 9]) > 0.95


def test_shading_sends_gradients_to_geometry():
    from engine.fields.hashgrid import HashGridConfig
    from engine.fields.nerf import FieldConfig

    torch.manual_seed(0)
    f = FieldConfig(
        grid=HashGridConfig(n_levels=4, log2_hashmap_size=12, max_resolution=64, compile=False)
    ).setup()
    r = renderer(n_samples=32)
    cams = turntable(1)
    out = r.render(
        f, cams, 16, Shading.TEXTURELESS, torch.tensor([[0.0, -1.0, 0.0]]), torch.Generator().manual_seed(0)
    )
    out.rgb.sum().backward()
    assert f.density_head[0].weight.grad.abs().sum() > 0
    assert (
        f.albedo_head[0].weight.grad is None or f.albedo_head[0].weight.grad.abs().sum() == 0
    )  # textureless


def test_render_chunked_matches_render():
    field, r = Ball(sigma=4.0, radius=0.5), renderer(n_samples=64, chunk_rays=50)
    cams = turntable(2)
    a = r.render(field, cams, 12, perturb=False)
    b = r.render_chunked(field, cams, 12)
    assert torch.allclose(a.rgb, b.rgb, atol=1e-6) and torch.allclose(a.depth, b.depth, atol=1e-5)
    assert math.isclose(float(a.opacity.sum()), float(b.opacity.sum()), rel_tol=1e-5)
