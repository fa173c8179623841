"""Geometry regularisers of the NeRF stage: what constrains the surface between the silhouettes.

Score distillation only sees renders; with a 32 px prior nothing stops the field from filling the surface
with high-frequency density that the prior cannot see and marching cubes turns into lumps. Each term below
is a typed weight (0 turns it off) with a schedule over the run; the defaults were chosen on the geometry
suite (``python scripts/evaluate.py --suites geometry``; docs/RESULTS.md has the numbers).

With S the rays of the step that see the object (opacity o > 0.05), p their expected surface points,
d their directions and n(x) = −∇σ/‖∇σ‖ the finite-difference density normal
(:func:`engine.render.renderer.density_normals`):

* **3-D normal smoothness** (stable-dreamfusion's ``lambda_3d_normal_smooth``; threestudio):
  L_ns = mean_{p ∈ S'} ‖n(p) − n(p + ξ)‖^q,  ξ ~ N(0, s² I), S' ⊆ S at most ``normal_smooth_points`` rays.
  Neighbouring surface points must agree on their normal: lumps and pits cost, flat faces and smooth curves
  do not. With q = 2 a sharp edge costs as much as it is long times its angle squared, so corners round off;
  q = 1 (total variation of the normal field) makes an edge cost only its length times its angle, which
  favours flat faces meeting at sharp edges — the shapes of most man-made objects.
* **Orientation** (DreamFusion §3.1, after Ref-NeRF eq. 11, at the expected surface point):
  L_o = mean_{p ∈ S'} stop_grad(o) · max(0, n(p) · d)²: a visible surface must face the camera, which
  removes the back-facing crust inside a soft shell.
* **Opacity binary entropy** (threestudio's opaque loss; stable-dreamfusion ``lambda_entropy``):
  L_e = mean over pixels of −o log o − (1 − o) log(1 − o): each pixel is either object or background, so
  the shell becomes a crisp surface that marching cubes follows.

Coarse-to-fine resolution of the hash grid lives with the field (``FieldConfig.coarse_to_fine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from engine.configbase import Config, setting
from engine.render.renderer import RenderOutput, density_normals, fd_gradient


@dataclass
class Ramp(Config):
    """A term's weight over the run: 0 before ``start``, then linear up to full at ``start + ramp``, and
    from ``fade_at`` on linearly down to ``fade_to`` × full at the last step (fractions of the run's steps).
    The fade lets a smoothing term shape the surface early and let go of it late, when the guidance
    alone sharpens edges and corners."""

    start: float = setting(0.0, ge=0.0, le=1.0)
    """Fraction of the run before the term switches on."""
    ramp: float = setting(0.3, ge=0.0, le=1.0)
    """Fraction of the run over which the weight grows linearly to its full value (0: at once)."""
    fade_at: float = setting(1.0, ge=0.0, le=1.0)
    """Fraction of the run after which the weight falls linearly towards ``fade_to`` (1: it never falls)."""
    fade_to: float = setting(0.0, ge=0.0, le=1.0)
    """The weight at the last step, as a fraction of full, when it fades."""

    def check(self) -> None:
        if self.fade_at < 1.0 and self.fade_at < self.start + self.ramp:
            raise ValueError(
                f"fade_at ({self.fade_at}) comes before the weight is full at start + ramp "
                f"({self.start + self.ramp:g}); fade later or ramp sooner"
            )

    def factor(self, step: int, total: int) -> float:
        frac = step / max(total, 1)
        if frac < self.start:
            return 0.0
        up = 1.0 if self.ramp <= 0 else min(1.0, (frac - self.start) / self.ramp)
        if frac <= self.fade_at or self.fade_at >= 1.0:
            return up
        return up * (1.0 - (1.0 - self.fade_to) * (frac - self.fade_at) / (1.0 - self.fade_at))


@dataclass
class RegularizerConfig(Config):
    """Geometry regularisers added to the guidance loss (each weight 0 turns its term off)."""

    normal_smooth: float = setting(100.0, ge=0.0)
    """λ_ns of the 3-D normal smoothness term."""
    normal_smooth_ramp: Ramp = field(default_factory=lambda: Ramp(0.0, 0.3))
    """Schedule of λ_ns."""
    normal_smooth_power: float = setting(2.0, ge=0.5, le=2.0)
    """p of the penalty ‖n(p) − n(p + ξ)‖^p: 2 smooths everything (corners round off too); 1 is a total
    variation of the normals, which favours flat faces meeting at sharp edges."""
    normal_smooth_std: float = setting(0.02, gt=0.0, le=0.5)
    """s: standard deviation (scene units) of the jitter ξ to the neighbouring point."""
    normal_smooth_points: int = setting(1024, ge=1, serve=(1, 1 << 16))
    """Surface points per step for the normal terms (random subset of the rays that see the object)."""
    normal_eps: float = setting(0.02, gt=0.0, le=0.2)
    """Finite-difference step of the regularisers' density normals (scene units)."""
    orientation: float = setting(0.0, ge=0.0)
    """λ_o of the orientation term."""
    orientation_ramp: Ramp = field(default_factory=lambda: Ramp(0.0, 0.3))
    """Schedule of λ_o."""
    opacity_entropy: float = setting(10.0, ge=0.0)
    """λ_e of the opacity binary-entropy term."""
    opacity_entropy_ramp: Ramp = field(default_factory=lambda: Ramp(0.2, 0.3))
    """Schedule of λ_e (late: the silhouette must form before it is made crisp)."""
    eikonal: float = setting(0.0, ge=0.0)
    """λ_eik of the eikonal term mean (‖∇d‖ − 1)² (field.density = sdf only; IGR, Gropp et al. 2020)."""
    eikonal_points: int = setting(2048, ge=1, serve=(1, 1 << 16))
    """Points per step for the eikonal term: half uniform in the box, half near the step's surface points."""

    @property
    def enabled(self) -> bool:
        return self.normal_smooth > 0 or self.orientation > 0 or self.opacity_entropy > 0 or self.eikonal > 0

    def setup(self, bound: float) -> GeometryRegularizers:
        return GeometryRegularizers(self, bound)


def binary_entropy(o: Tensor, eps: float = 1e-5) -> Tensor:
    """−o log o − (1 − o) log(1 − o), elementwise, with o clamped to [eps, 1 − eps]."""
    o = o.clamp(eps, 1.0 - eps)
    return -(o * torch.log(o) + (1.0 - o) * torch.log1p(-o))


class GeometryRegularizers:
    """Computes the weighted regulariser losses of one training step."""

    def __init__(self, cfg: RegularizerConfig, bound: float):
        cfg.validate()
        self.cfg, self.bound = cfg, bound

    def __call__(
        self, field, out: RenderOutput, step: int, total: int, generator: torch.Generator
    ) -> dict[str, Tensor]:
        """Weighted losses by name (only the terms that are on at this step); add them to the guidance loss."""
        c = self.cfg
        losses: dict[str, Tensor] = {}
        w_e = c.opacity_entropy * c.opacity_entropy_ramp.factor(step, total)
        if w_e > 0:
            losses["opacity_entropy"] = w_e * binary_entropy(out.opacity).mean()
        w_ns = c.normal_smooth * c.normal_smooth_ramp.factor(step, total)
        w_o = c.orientation * c.orientation_ramp.factor(step, total)
        surf = out.surface
        if c.eikonal > 0 and hasattr(field, "sdf") and field.cfg.density == "sdf":
            losses["eikonal"] = c.eikonal * self._eikonal(field, surf, generator)
        if (w_ns > 0 or w_o > 0) and surf is not None and len(surf.points) > 0:
            n = len(surf.points)
            pick = torch.randperm(n, generator=generator)[: c.normal_smooth_points].to(surf.points.device)
            # The point is where the surface is, not a parameter to move: gradients go to σ only.
            p = surf.points[pick].detach()
            if w_ns > 0:
                jitter = c.normal_smooth_std * torch.randn(p.shape, generator=generator).to(p.device)
                normals = density_normals(field, torch.cat([p, p + jitter]), c.normal_eps, self.bound)
                n_p, n_q = normals.split(len(p))
                diff = (n_p - n_q).pow(2).sum(-1)
                if (
                    c.normal_smooth_power != 2.0
                ):  # ‖Δn‖^p = (‖Δn‖²)^(p/2); the epsilon keeps the gradient finite
                    diff = (diff + 1e-8).pow(c.normal_smooth_power / 2)
                losses["normal_smooth"] = w_ns * diff.mean()
            else:
                n_p = density_normals(field, p, c.normal_eps, self.bound)
            if w_o > 0:
                facing = (n_p * surf.dirs[pick]).sum(-1).clamp(min=0.0)
                losses["orientation"] = w_o * (surf.opacity[pick].detach() * facing.pow(2)).mean()
        return losses

    def _eikonal(self, field, surf, generator: torch.Generator) -> Tensor:
        """mean (‖∇d‖ − 1)² by central differences, at uniform points and jittered surface points."""
        c, b = self.cfg, self.bound
        n = c.eikonal_points
        device = next(field.parameters()).device
        pts = (torch.rand(n // 2, 3, generator=generator) * 2 - 1) * b
        if surf is not None and len(surf.points):
            pick = torch.randint(len(surf.points), (n - n // 2,), generator=generator)
            near = surf.points.detach().cpu()[pick] + 0.05 * torch.randn(n - n // 2, 3, generator=generator)
            pts = torch.cat([pts, near])
        grad = fd_gradient(field.sdf, pts.to(device), c.normal_eps, b)
        return (grad.norm(dim=-1) - 1.0).pow(2).mean()


__all__ = ["GeometryRegularizers", "Ramp", "RegularizerConfig", "binary_entropy"]
