"""Score Distillation Sampling (DreamFusion, Poole et al. 2022; eq. 3 of the LMC-SDS paper).

    ∇_θ L_SDS = E_{t,ε}[ w(t) · (ε̂^ω_φ(z_t, y, t) − ε) · ∂z/∂θ ],   z_t = √ᾱ_t z + √(1−ᾱ_t) ε,
    ε̂^ω_φ(z_t, y, t) = ε_φ(z_t, t) + ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t))        (classifier-free guidance)

The √ᾱ_t factor of ∂z_t/∂z is absorbed into w(t), as in DreamFusion. The UNet Jacobian is omitted
(that is the point of SDS); the gradient reaches the field through the surrogate loss
½‖z − sg(z − g)‖² / B of :func:`engine.guidance.base.surrogate_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from engine.configbase import setting
from engine.guidance.base import Guidance, GuidanceConfig, PromptEmbeddings
from engine.priors.base import DiffusionPrior


@dataclass
class SDSConfig(GuidanceConfig):
    """Score Distillation Sampling."""

    name = "sds"
    label = "SDS"
    summary = "Score Distillation Sampling (DreamFusion): fast; can look over-saturated"
    order = 0

    guidance_scale: float = setting(100.0, ge=0.0, serve=(0.0, 1000.0))
    """Classifier-free guidance scale ω (DreamFusion uses 100)."""
    fixed_noise: bool = False
    """Fixed-ε seeds: keep the noise ε fixed for the whole run (seeded by ``train.seed``; t stays random).
    Off by default for SDS: the LMC-SDS paper (§4) finds fixed ε often unstable with plain SDS."""

    def setup(self, prior: DiffusionPrior, seed: int = 0) -> SDSGuidance:
        self.validate()
        return SDSGuidance(self, prior, seed)


def cfg_noise(
    prior: DiffusionPrior, z_t: Tensor, t: Tensor, text: PromptEmbeddings, scale: float
) -> tuple[Float[Tensor, "B C h w"], Float[Tensor, "B C h w"], Float[Tensor, "B C h w"]]:
    """(ε̂^ω, ε_cond, ε_uncond) from one batched UNet call over [uncond; cond]."""
    eps = prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([text.uncond, text.cond]))
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + scale * (eps_cond - eps_uncond), eps_cond, eps_uncond


class SDSGuidance(Guidance):
    cfg: SDSConfig

    def direction(self, z, z_t, t, eps, text, generator, cameras):
        """g = ε̂^ω_φ(z_t, y, t) − ε (SDS has no use for the cameras)."""
        eps_hat, _, _ = cfg_noise(self.prior, z_t, t, text, self.cfg.guidance_scale)
        return eps_hat - eps, {}
