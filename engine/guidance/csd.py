"""Classifier Score Distillation (CSD; Yu et al. 2023, "Text-to-3D with Classifier Score Distillation").

The LMC-SDS paper splits SDS's gradient into a prompt term and a projection term (its eq. 6a–c):

    ∇_θ L_SDS  = ∇_θ L_cond + ∇_θ L_proj
    ∇_θ L_cond = ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t)) · ∂z_t/∂θ                                   (6b)
    ∇_θ L_proj =     (ε_φ(z_t, t) − ε)             · ∂z_t/∂θ                                    (6c)

CSD keeps the prompt term alone — the score of the implicit classifier p(y | z_t) that classifier-free
guidance amplifies — and drops the projection term (whose denoising step the LMC-SDS paper shows biases
renders towards blur):

    ∇_θ L_CSD = E_{t,ε}[ w(t) · ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t)) · ∂z/∂θ ],   z_t = √ᾱ_t z + √(1−ᾱ_t) ε

As in SDS the √ᾱ_t of ∂z_t/∂z is absorbed into w(t) and the UNet Jacobian is not propagated; the gradient
reaches the field through the surrogate ½‖z − sg(z − g)‖²/B. ω only scales the step here (there is no
second term to balance), so it acts as a learning-rate multiplier of the guidance. The one batched UNet
call is the same as SDS's (:func:`engine.guidance.sds.cfg_noise`).

Random draws per call, in order: the timesteps, then ε (unless fixed-ε seeds fix it).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.configbase import setting
from engine.guidance.base import Guidance, GuidanceConfig
from engine.guidance.sds import cfg_noise
from engine.priors.base import DiffusionPrior


@dataclass
class CSDConfig(GuidanceConfig):
    """Classifier Score Distillation: only the prompt (classifier) term of SDS."""

    name = "csd"
    label = "CSD"
    summary = "Classifier Score Distillation: SDS's prompt term alone, without its blurring denoising term"
    order = 30

    guidance_scale: float = setting(10.0, gt=0.0, serve=(0.0, 1000.0))
    """ω, the size of the classifier score ε_φ(z_t, y, t) − ε_φ(z_t, t) in the update (> 0: it is the
    only term). 10 matches the size of SDS's prompt term at the built-in prior's tuned ω = 10."""

    def setup(self, prior: DiffusionPrior, seed: int = 0) -> CSDGuidance:
        self.validate()
        return CSDGuidance(self, prior, seed)


class CSDGuidance(Guidance):
    cfg: CSDConfig

    def direction(self, z, z_t, t, eps, text, generator, cameras):
        """g = ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t)) (eq. 6b; CSD has no use for the cameras)."""
        _, eps_cond, eps_uncond = cfg_noise(self.prior, z_t, t, text, self.cfg.guidance_scale)
        return self.cfg.guidance_scale * (eps_cond - eps_uncond), {}
