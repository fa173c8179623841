"""Geometry regularisers: each term's value on fields with a known answer, schedules, and the trainer wiring."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from engine.regularizers import Ramp, RegularizerConfig, binary_entropy
from engine.render.renderer import RenderOutput, SurfacePoints


class HeightField(nn.Module):
    """σ = softplus(−k (z − h(x, y))): a surface z = h(x, y) whose normal is known; ``bumps`` adds ripples."""

    def __init__(self, bumps: float = 0.0):
        super().__init__()
        self.bumps = bumps
        self.k = nn.Parameter(torch.tensor(20.0))

    bound = 1.0

    def density(self, x: Tensor) -> Tensor:
        h = self.bumps * torch.sin(25.0 * x[:, 0]) * torch.cos(25.0 * x[:, 1])
        return torch.nn.functional.softplus(-self.k * (x[:, 2] - h))


def _output(n: int = 256, down: bool = True, opacity: float = 0.5) -> RenderOutput:
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.rand(n, 2, generator=g) * 1.2 - 0.6, torch.zeros(n, 1)], 1)
    dirs = torch.tensor([0.0, 0.0, -1.0 if down else 1.0]).expand(n, 3)
    op = torch.full((4, 1, 8, 8), opacity)
    return RenderOutput(op.expand(4, 3, 8, 8), op, op, 0, SurfacePoints(pts, dirs, torch.full((n,), 0.9)))


def _losses(field, out, **cfg) -> dict[str, Tensor]:
    reg = RegularizerConfig(**cfg).setup(1.0)
    losses = reg(field, out, step=100, total=100, generator=torch.Generator().manual_seed(1))
    return losses


def test_binary_entropy_is_zero_when_crisp_and_ln2_at_half():
    assert binary_entropy(torch.tensor([0.0, 1.0])).max() < 1e-3
    assert binary_entropy(torch.tensor(0.5)) == pytest.approx(math.log(2.0))


def test_ramp():
    r = Ramp(start=0.2, ramp=0.3)
    assert [r.factor(s, 100) for s in (0, 19, 20, 35, 50, 90)] == pytest.approx([0, 0, 0, 0.5, 1, 1])
    assert Ramp(0.0, 0.0).factor(0, 10) == 1.0
    assert r.factor(100, 100) == 1.0  # no fade unless asked


def test_ramp_fades_late_to_its_floor():
    r = Ramp(start=0.0, ramp=0.3, fade_at=0.6, fade_to=0.25)
    assert [r.factor(s, 100) for s in (30, 60, 80, 100)] == pytest.approx([1.0, 1.0, 0.625, 0.25])
    with pytest.raises(ValueError, match="fade_at .* before the weight is full"):
        Ramp(start=0.2, ramp=0.3, fade_at=0.4).validate()


def test_normal_smoothness_is_zero_on_a_plane_and_positive_on_ripples():
    only = dict(opacity_entropy=0.0, orientation=0.0, normal_smooth=1.0)
    flat = _losses(HeightField(0.0), _output(), **only)["normal_smooth"]
    rippled = _losses(HeightField(0.03), _output(), **only)["normal_smooth"]
    assert float(flat) < 1e-6 and float(rippled) > 0.05


def test_orientation_penalises_surfaces_facing_away_from_the_camera():
    only = dict(opacity_entropy=0.0, normal_smooth=0.0, orientation=1.0)
    facing = _losses(HeightField(), _output(down=True), **only)["orientation"]  # normal +z, rays going −z
    away = _losses(HeightField(), _output(down=False), **only)["orientation"]
    assert float(facing) < 1e-6 and float(away) == pytest.approx(0.9, rel=1e-3)  # opacity 0.9 · (n·d = 1)²


def test_losses_reach_the_geometry_and_respect_weights_and_schedules():
    field = HeightField(0.03)
    losses = _losses(field, _output(), normal_smooth=2.0, orientation=1.0, opacity_entropy=3.0)
    assert set(losses) == {"normal_smooth", "orientation", "opacity_entropy"}
    assert float(losses["opacity_entropy"]) == pytest.approx(3.0 * math.log(2.0), rel=1e-4)
    sum(losses.values()).backward()
    assert field.k.grad is not None and field.k.grad.abs() > 0
    off = RegularizerConfig(normal_smooth=0.0, orientation=0.0, opacity_entropy=0.0)
    assert not off.enabled and off.setup(1.0)(field, _output(), 50, 100, torch.Generator()) == {}
    early = RegularizerConfig().setup(1.0)(field, _output(), 0, 100, torch.Generator())
    assert "opacity_entropy" not in early  # switched on after 20 % of the run by default


@pytest.mark.parametrize(
    "bad", [{"normal_smooth": -1.0}, {"normal_smooth_std": 0.0}, {"opacity_entropy_ramp": Ramp(1.5, 0.1)}]
)
def test_bad_settings_are_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RegularizerConfig(**bad).validate()


class SphereSDF(nn.Module):
    """d(x) = s · (‖x‖ − 0.5): an exact signed distance for s = 1, a stretched one otherwise."""

    def __init__(self, stretch: float = 1.0):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(stretch))

        class _Cfg:
            density = "sdf"

        self.cfg = _Cfg()

    bound = 1.0

    def sdf(self, x: Tensor) -> Tensor:
        return self.s * (x.norm(dim=-1) - 0.5)


def test_eikonal_is_zero_for_a_true_distance_and_penalises_a_stretched_one():
    only = dict(opacity_entropy=0.0, normal_smooth=0.0, orientation=0.0, eikonal=1.0)
    exact = _losses(SphereSDF(1.0), _output(), **only)["eikonal"]
    stretched = _losses(SphereSDF(2.0), _output(), **only)["eikonal"]
    assert float(exact) < 1e-3 and float(stretched) == pytest.approx(1.0, abs=0.05)  # (‖∇d‖ − 1)² = 1


def test_total_variation_power_weighs_small_normal_changes_more_than_the_square():
    """‖Δn‖ against ‖Δn‖²: for the small differences of a gentle ripple the power 1 penalty is the larger."""
    base = dict(opacity_entropy=0.0, orientation=0.0, normal_smooth=1.0)
    square = _losses(HeightField(0.01), _output(), **base)["normal_smooth"]
    tv = _losses(HeightField(0.01), _output(), **base, normal_smooth_power=1.0)["normal_smooth"]
    assert 0 < float(square) < float(tv) < 1.0
    assert float(tv) ** 2 <= float(square) * 1.0001  # Jensen: (mean ‖Δn‖)² ≤ mean ‖Δn‖²


def test_eikonal_without_an_sdf_field_is_refused_before_training():
    from engine.config import build_config

    with pytest.raises(ValueError, match="field.density sdf"):
        build_config("a red cube", overrides={"regularizers.eikonal": 10.0})
    cfg = build_config("a red cube", overrides={"regularizers.eikonal": 10.0, "field.density": "sdf"})
    assert cfg.regularizers.eikonal == 10.0


def test_the_latent_prior_weighs_the_regularisers_up_except_for_lmc_sds():
    """With the default (latent) prior the normal-smoothness and entropy weights are ×LATENT_GRADIENT_RATIO
    for the methods whose guidance is not scaled down; LMC-SDS keeps the plain weights (×5 smoothed its cube
    into a blob, engine/config.py). The 32 px prior keeps them for every method."""
    from engine.config import LATENT_GRADIENT_RATIO, LATENT_RATIO_EXEMPT, build_config
    from engine.guidance import METHODS

    plain = RegularizerConfig()
    assert "lmc-sds" in LATENT_RATIO_EXEMPT
    for method in METHODS:
        latent = build_config("a red cube", method).regularizers
        ratio = 1.0 if method in LATENT_RATIO_EXEMPT else LATENT_GRADIENT_RATIO
        assert latent.normal_smooth == pytest.approx(plain.normal_smooth * ratio), method
        assert latent.opacity_entropy == pytest.approx(plain.opacity_entropy * ratio), method
        pixel = build_config("a red cube", method, prior="builtin-pixel32").regularizers
        assert pixel.normal_smooth == plain.normal_smooth, method
