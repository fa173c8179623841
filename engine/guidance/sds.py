"""Score Distillation Sampling (DreamFusion, Poole et al. 2022; eq. 3 of the LMC-SDS paper).

    ∇_θ L_SDS = E_{t,ε}[ w(t) · (ε̂^ω_φ(z_t, y, t) − ε) · ∂z/∂θ ],   z_t = √ᾱ_t z + √(1−ᾱ_t) ε,
    ε̂^ω_φ(z_t, y, t) = ε_φ(z_t, t) + ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t))        (classifier-free guidance)

The √ᾱ_t factor of ∂z_t/∂z is absorbed into w(t), as in DreamFusion. The UNet Jacobian is omitted
(that is the point of SDS); the gradient reaches the field through the surrogate loss
½‖z − sg(z − g)‖² / B of :func:`engine.guidance.base.surrogate_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from jaxtyping import Float
from torch import Tensor

from engine.guidance.base import (
    Guidance,
    GuidanceOutput,
    PromptEmbeddings,
    TimestepConfig,
    Weighting,
    surrogate_loss,
    weight,
)
from engine.priors.base import DiffusionPrior


@dataclass
class SDSConfig:
    """Score Distillation Sampling."""

    guidance_scale: float = 100.0
    """Classifier-free guidance scale ω (DreamFusion uses 100)."""
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    """Timestep range and annealing."""
    weighting: Weighting = "sds"
    """w(t): sds = 1 − ᾱ_t (DreamFusion), uniform = 1."""
    grad_clip: float | None = None
    """Clamp each element of the gradient to ±grad_clip (None: off)."""
    fixed_noise: bool = False
    """Fixed-ε seeds: keep the noise ε fixed for the whole run (seeded by ``train.seed``; t stays random).
    Off by default for SDS: the LMC-SDS paper (§4) finds fixed ε often unstable with plain SDS."""

    def setup(self, prior: DiffusionPrior, seed: int = 0) -> SDSGuidance:
        """The guidance for ``prior``; ``seed`` (the run's seed) seeds the fixed ε when ``fixed_noise``."""
        self.timesteps.validate()
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must be >= 0 (got {self.guidance_scale})")
        return SDSGuidance(self, prior, fixed_noise_seed=seed if self.fixed_noise else None)


def cfg_noise(
    prior: DiffusionPrior, z_t: Tensor, t: Tensor, text: PromptEmbeddings, scale: float
) -> tuple[Float[Tensor, "B C h w"], Float[Tensor, "B C h w"], Float[Tensor, "B C h w"]]:
    """(ε̂^ω, ε_cond, ε_uncond) from one batched UNet call over [uncond; cond]."""
    eps = prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([text.uncond, text.cond]))
    eps_uncond, eps_cond = eps.chunk(2)
    return eps_uncond + scale * (eps_cond - eps_uncond), eps_cond, eps_uncond


class SDSGuidance(Guidance):
    def __init__(self, cfg: SDSConfig, prior: DiffusionPrior, fixed_noise_seed: int | None = None):
        super().__init__(prior, fixed_noise_seed)
        self.cfg = cfg

    def __call__(
        self,
        images: Float[Tensor, "B 3 H W"],
        text: PromptEmbeddings,
        step: int,
        total_steps: int,
        generator: torch.Generator,
        *,
        cameras: Float[Tensor, "B 4 4"] | None = None,
    ) -> GuidanceOutput:
        prior = self.prior  # SDS has no use for the cameras
        z = prior.encode_images(images)
        t = self.cfg.timesteps.sample(z.shape[0], prior.num_train_timesteps, step, total_steps, generator).to(
            z.device
        )
        eps = self.prompt_noise(z.shape, generator)
        with torch.no_grad():
            z_t = prior.add_noise(z.detach(), eps, t)
            eps_hat, _, _ = cfg_noise(prior, z_t, t, text, self.cfg.guidance_scale)
            grad = weight(self.cfg.weighting, prior.alphas_cumprod, t) * (eps_hat - eps)
            if self.cfg.grad_clip is not None:
                grad = grad.clamp(-self.cfg.grad_clip, self.cfg.grad_clip)
        return GuidanceOutput(
            loss=surrogate_loss(z, grad),
            grad_norm=float(grad.flatten(1).norm(dim=1).mean()),
            t=t,
        )
