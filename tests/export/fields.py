"""Small analytic fields for export tests: known geometry and a known albedo (colour = function of position)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def smooth_albedo(x: Tensor) -> Tensor:
    """A smooth, non-symmetric colour field in [0.15, 0.85]."""
    return torch.stack(
        [
            0.5 + 0.35 * torch.sin(2.5 * x[:, 0] + 0.3),
            0.5 + 0.35 * torch.cos(2.0 * x[:, 1] - 0.2),
            0.5 + 0.35 * torch.sin(3.0 * x[:, 2] + 1.0),
        ],
        -1,
    )


class SpheresField(nn.Module):
    """Union of spheres: σ = peak · sigmoid(−sharpness · sdf); albedo = ``albedo_fn`` (default smooth_albedo).

    The default is a "snowman" (a body sphere and a smaller head above it), not symmetric in z, with its
    lowest point at z = −0.65.
    """

    def __init__(
        self,
        spheres: tuple[tuple[tuple[float, float, float], float], ...] = (
            ((0.0, 0.0, -0.25), 0.4),
            ((0.0, 0.0, 0.3), 0.25),
        ),
        peak: float = 500.0,
        sharpness: float = 80.0,
        bound: float = 1.0,
        albedo_fn=smooth_albedo,
    ):
        super().__init__()
        self.register_buffer("centres", torch.tensor([c for c, _ in spheres], dtype=torch.float32))
        self.register_buffer("radii", torch.tensor([r for _, r in spheres], dtype=torch.float32))
        self.anchor = nn.Parameter(torch.zeros(1))  # callers find the device through .parameters()
        self.peak, self.sharpness, self._bound, self.albedo_fn = peak, sharpness, bound, albedo_fn

    @property
    def bound(self) -> float:
        return self._bound

    def sdf(self, x: Tensor) -> Tensor:
        return ((x[:, None, :] - self.centres).norm(dim=-1) - self.radii).min(1).values

    def density(self, x: Tensor) -> Tensor:
        return self.peak * torch.sigmoid(-self.sharpness * self.sdf(x))

    def albedo(self, x: Tensor) -> Tensor:
        return self.albedo_fn(x)


class ConstantField(nn.Module):
    """σ = value everywhere (empty for 0, a box-filling fog for a large value)."""

    def __init__(self, value: float, bound: float = 1.0):
        super().__init__()
        self.value, self.bound = value, bound
        self.anchor = nn.Parameter(torch.zeros(1))

    def density(self, x: Tensor) -> Tensor:
        return torch.full((x.shape[0],), self.value)

    def albedo(self, x: Tensor) -> Tensor:
        return torch.full((x.shape[0], 3), 0.5)


class CrustField(SpheresField):
    """A lumpy, holed shell like a score-distillation field: a sphere whose surface carries high-frequency
    density noise, with a floater beside it, an air pocket inside and pin-holes through the shell."""

    def __init__(self, radius: float = 0.5, seed: int = 0):
        super().__init__(spheres=(((0.0, 0.0, 0.0), radius),), sharpness=40.0)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(24, 3, generator=g) * 18.0)
        self.register_buffer("phases", torch.rand(24, generator=g) * 6.283)
        self.radius = radius

    def sdf(self, x: Tensor) -> Tensor:
        lumps = 0.012 * torch.sin(x @ self.freqs.T + self.phases).sum(-1) / 24**0.5 * 4
        d = x.norm(dim=-1) - self.radius + lumps
        shell = torch.maximum(d, -(x.norm(dim=-1) - 0.2))  # an air pocket of radius 0.2 inside
        floater = (x - torch.tensor([0.8, 0.0, 0.0])).norm(dim=-1) - 0.06
        pinhole = torch.sqrt(x[:, 0] ** 2 + x[:, 1] ** 2) - 0.015  # a thin tunnel along z through the shell
        holed = torch.maximum(shell, -pinhole)
        return torch.minimum(holed, floater)
