"""The NeRF field: hash-grid encoding + small MLP heads for density and albedo.

Density follows Magic3D / threestudio: σ(x) = exp(raw(x) + b(x)) with a spatial *blob* bias
b(x) = λ_blob · (1 − ‖x‖ / r_blob) so that optimisation starts from a soft ball at the origin rather
than from empty space or noise (DreamFusion §3.1 uses a Gaussian bump for the same reason). The
exponential is "truncated" in its backward pass (instant-NGP) to keep gradients finite.
Albedo is a sigmoid of the second head; there are no view-dependent effects (score distillation
wants a diffuse asset that can be baked into a texture).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from engine.configbase import Config, setting
from engine.fields.hashgrid import HashGridConfig


class _TruncExp(torch.autograd.Function):
    """exp with its gradient clamped at exp(15): instant-NGP's trick against exploding densities."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    return _TruncExp.apply(x)


def laplace_density(d: Tensor, beta: float) -> Tensor:
    """σ = Ψ_β(−d) / β with Ψ_β the CDF of a zero-mean Laplace distribution of scale β (VolSDF, Yariv et al.
    2021, eq. 2–3): 1/β deep inside, 1/(2β) on the surface d = 0, decaying as exp(−d/β)/(2β) outside."""
    s = -d / beta
    return (
        torch.where(s <= 0, 0.5 * torch.exp(s.clamp(max=0.0)), 1.0 - 0.5 * torch.exp(-s.clamp(min=0.0)))
        / beta
    )


@dataclass
class CoarseToFine(Config):
    """Hash-grid levels switched on progressively (threestudio's progressive-band grid, "to ensure smooth
    analytic normals"): the field starts with only the coarse levels, so the optimisation forms the shape
    before the fine levels can add surface detail."""

    start_levels: int = setting(0, ge=0, serve=(0, 32))
    """Levels active at step 0 (0: every level from the start, i.e. off)."""
    until: float = setting(0.5, ge=0.0, le=1.0)
    """Fraction of the run at which every level is active; levels are added at even intervals until then."""

    def active_levels(self, n_levels: int, step: int, total: int) -> int:
        if self.start_levels <= 0 or self.start_levels >= n_levels:
            return n_levels
        frac = step / max(total, 1)
        grown = (n_levels - self.start_levels) * (1.0 if self.until <= 0 else min(1.0, frac / self.until))
        return min(n_levels, self.start_levels + int(grown))


@dataclass
class FieldConfig(Config):
    """Neural field: encoding, heads, and the initial density blob."""

    grid: HashGridConfig = field(default_factory=HashGridConfig)
    """Multiresolution hash-grid encoding."""
    hidden_dim: int = setting(32, ge=1, serve=(4, 256))
    """Width of the hidden layer in each MLP head."""
    bound: float = setting(1.0, gt=0.0)
    """The scene is the box [-bound, bound]^3; density is zero outside it."""
    blob_density: float = 10.0
    """λ_blob: density bias at the centre (Magic3D uses 10)."""
    blob_radius: float = setting(0.5, gt=0.0)
    """r_blob: the bias crosses zero at this radius (scene units)."""
    coarse_to_fine: CoarseToFine = field(default_factory=CoarseToFine)
    """Progressive activation of the hash-grid levels during training."""
    density: Literal["exp", "sdf"] = "exp"
    """exp: σ = exp(MLP + blob bias); sdf: the MLP gives a signed distance d = ‖x‖ − r_blob + MLP and
    σ = Ψ_β(−d) / β (VolSDF), so the surface is the level set d = 0 (train with regularizers.eikonal)."""
    sdf_beta: float = setting(0.02, gt=0.0, le=0.5)
    """β of the sdf density: the width (scene units) of the transition from empty to solid."""

    def setup(
        self, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ) -> NeRFField:
        """The field on ``device``. Its initial parameters come from ``generator`` (a CPU generator: the
        trainer passes one seeded from the run's seed) when given, else from torch's global generator."""
        return NeRFField(self, device, generator).to(device)


def _linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
    """nn.Linear with its default initialisation (kaiming-uniform weight, U(±1/√fan_in) bias), drawn from
    ``generator`` when given. The layer is then built uninitialised (skip_init) so that it never touches
    the global generator, which jobs on other threads share; the draws are in nn.Linear's own order, so a
    generator seeded with s gives the same layer as ``torch.manual_seed(s)`` did on the CPU."""
    if generator is None:
        return nn.Linear(n_in, n_out)
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(n_in) if n_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def _mlp(n_in: int, hidden: int, n_out: int, generator: torch.Generator | None = None) -> nn.Sequential:
    return nn.Sequential(
        _linear(n_in, hidden, generator), nn.ReLU(inplace=True), _linear(hidden, n_out, generator)
    )


class NeRFField(nn.Module):
    """σ(x) and albedo(x) for points in the scene box."""

    def __init__(
        self, cfg: FieldConfig, device: torch.device | str = "cpu", generator: torch.Generator | None = None
    ):
        super().__init__()
        self.cfg = cfg
        # One generator for every draw, in a fixed order (table, density head, albedo head).
        self.encoding = cfg.grid.setup(device, generator)
        self.density_head = _mlp(self.encoding.out_dim, cfg.hidden_dim, 1, generator)
        self.albedo_head = _mlp(self.encoding.out_dim, cfg.hidden_dim, 3, generator)
        # 1 for the features of active levels, 0 for the rest (level-major layout: column l·F + f).
        self.register_buffer("level_mask", torch.ones(self.encoding.out_dim), persistent=False)
        self.active_levels = cfg.grid.n_levels

    def set_progress(self, step: int, total: int) -> None:
        """Switch the hash-grid levels on as ``cfg.coarse_to_fine`` says for this point of the run."""
        k = self.cfg.coarse_to_fine.active_levels(self.cfg.grid.n_levels, step, total)
        if k != self.active_levels:
            f = self.cfg.grid.n_features_per_level
            self.level_mask.zero_()
            self.level_mask[: k * f] = 1.0
            self.active_levels = k

    @property
    def bound(self) -> float:
        return self.cfg.bound

    def _encode(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N E"]:
        h = self.encoding((x / self.cfg.bound + 1.0) * 0.5)
        # Masked levels get no gradient either: their table entries keep their initial values until switched on.
        return h if self.active_levels == self.cfg.grid.n_levels else h * self.level_mask.to(h.dtype)

    def density_bias(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """b(x) = λ_blob (1 − ‖x‖ / r_blob)."""
        return self.cfg.blob_density * (1.0 - x.norm(dim=-1) / self.cfg.blob_radius)

    def _density_from(self, h: Tensor, x: Tensor) -> Tensor:
        if self.cfg.density == "sdf":
            return laplace_density(self._sdf_from(h, x), self.cfg.sdf_beta)
        return trunc_exp(self.density_head(h).squeeze(-1) + self.density_bias(x))

    def _sdf_from(self, h: Tensor, x: Tensor) -> Tensor:
        # Geometric initialisation: the MLP starts near 0, so d starts as the blob's sphere.
        return self.density_head(h).squeeze(-1) + x.norm(dim=-1) - self.cfg.blob_radius

    def sdf(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """Signed distance d(x) (field.density = sdf only)."""
        return self._sdf_from(self._encode(x), x)

    def density(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, " N"]:
        """Volume density σ ≥ 0 at points inside the box (callers keep points inside)."""
        return self._density_from(self._encode(x), x)

    def albedo(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
        """Diffuse colour in [0, 1] (what the texture bake queries)."""
        return torch.sigmoid(self.albedo_head(self._encode(x)))

    def forward(self, x: Float[Tensor, "N 3"]) -> tuple[Float[Tensor, " N"], Float[Tensor, "N 3"]]:
        """Density and albedo from one encoding pass."""
        h = self._encode(x)
        return self._density_from(h, x), torch.sigmoid(self.albedo_head(h))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimiser group: the hash table learns ~10× faster than the MLPs (instant-NGP)."""
        return {
            "grid": list(self.encoding.parameters()),
            "mlp": list(self.density_head.parameters()) + list(self.albedo_head.parameters()),
        }
