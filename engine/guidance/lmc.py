"""LMC-SDS: Score Distillation Sampling with a Learned Manifold Corrective (Kolotouros et al. 2024, §4).

SDS splits into a prompt term and a "projection" term (eq. 6a–c). LMC-SDS keeps the prompt term and
replaces the projection term, whose one-step denoised estimate ẑ_t is biased towards blur (eq. 7–8), by
a comparison of ẑ_t with a learned imitation b̂(z, t) of that bias applied to z (eq. 9):

    ∇_θ L_cond = ω · (ε_φ(z_t, y, t) − ε_φ(z_t, t)) · ∂z/∂θ,      z_t  = √ᾱ_t z + √(1−ᾱ_t) ε     (6b)
    ∇_θ L_lmc  =     (b̂(z, t) − ẑ_t)                 · ∂z/∂θ,      ẑ_t  = z_φ(z'_t, t)            (9)
    ∇_θ L_LMC-SDS = w(t) / ω · (∇_θ L_cond + ∇_θ L_lmc)                                          (§5 set-up)

* ẑ_t is the prior's unconditional one-step denoised estimate of z'_t = √ᾱ_t z + √(1−ᾱ_t) ε'
  (:func:`engine.guidance.corrective.denoised_estimate`; x₀ clamped as the corrective was trained).
* b̂(z, t) is b̂_ψ's output renormalised to ẑ_t's standard deviation as in eq. 10 (per image and channel;
  :func:`engine.guidance.corrective.renormalise`) — the paper "absorbs" that normalisation into b̂.
* Neither the Jacobian of the denoiser nor that of b̂ is propagated (eq. 9), and the √ᾱ_t/√(1−ᾱ_t)
  weight of eq. 7 is dropped (paper: better fidelity). As in SDS, the √ᾱ_t of ∂z_t/∂z is absorbed.
* The total is scaled by 1/ω (paper §5 "Set-up": ω can change without changing the gradient's size), so
  the prompt term enters with weight 1 and the corrective with 1/ω.
* Fixed-ε seeds (§4 "Increasing Sample Diversity"), on by default: ε of L_cond is fixed for the whole
  run (seeded by the run seed; t stays random) while ε' of L_lmc is drawn afresh every step. With
  ``fixed_noise`` off, both terms share one fresh ε per step (ε' = ε, one UNet batch of 2B instead of 3B),
  which is exactly eq. 6 with L_proj replaced by L_lmc.
* w(t) = 1 − ᾱ_t by default: appendix 0.A sets w(t) = 1 "in all experiments … The only exceptions are
  the DreamFusion experiments, where we use the original hyper-parameters", and text-to-3D is those
  (DreamFusion's w(t) = σ_t²). ``weighting="uniform"`` is the image experiments' choice.

Random draws per call, in order: the timesteps, then (only when ``fixed_noise`` is off) ε, then (only
when it is on) ε'. The gradient reaches the field through the surrogate ½‖z − sg(z − g)‖²/B of
:func:`engine.guidance.base.surrogate_loss`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.configbase import setting
from engine.guidance.base import Guidance, GuidanceConfig, Weighting
from engine.guidance.corrective import (
    ManifoldCorrective,
    check_compatible,
    denoised_estimate,
    find_corrective,
    load_corrective,
    renormalise,
)
from engine.priors.base import DiffusionPrior
from engine.priors.identity import PriorIdentity

log = logging.getLogger(__name__)


@dataclass
class LMCSDSConfig(GuidanceConfig):
    """Score Distillation Sampling with a Learned Manifold Corrective (LMC-SDS)."""

    name = "lmc-sds"
    label = "LMC-SDS"
    summary = "SDS with a Learned Manifold Corrective: better-behaved at low guidance scales, less saturated"
    order = 10

    guidance_scale: float = setting(10.0, gt=0.0, serve=(0.0, 1000.0))
    """Classifier-free guidance scale ω (LMC-SDS works with ~1/10 of DreamFusion's 100; the paper uses 8–20).
    Must be > 0: the loss is scaled by 1/ω."""
    weighting: Weighting = "sds"
    """w(t): sds = 1 − ᾱ_t, DreamFusion's (the paper's text-to-3D experiments keep DreamFusion's
    hyper-parameters, app. 0.A); uniform = 1 (its image experiments)."""
    fixed_noise: bool = True
    """Fixed-ε seeds: fix ε of the prompt term for the whole run (seeded by ``train.seed``; t stays random)
    while the corrective term keeps drawing fresh noise (paper §4: diverse yet stable results; its
    text-to-3D Fig. 10). On by default here, where the paper switches it on only when it says so: different
    seeds giving genuinely different assets is what this product promises for LMC-SDS."""
    corrective: str | None = None
    """Folder of the manifold corrective b̂ (scripts/train_corrective.py writes one); None: the prior's
    shipped one in <prior folder>/corrective (the built-in prior has one)."""

    def check_prior(self, prior: PriorIdentity) -> None:
        """A corrective must exist for the prior (given, or shipped in its folder)."""
        find_corrective(prior.folder, prior.source, self.corrective)

    def setup(self, prior: DiffusionPrior, seed: int = 0) -> LMCSDSGuidance:
        """The guidance for ``prior``; fails here, before any training, when no corrective exists for it."""
        self.validate()
        return LMCSDSGuidance(self, prior, seed)


class LMCSDSGuidance(Guidance):
    cfg: LMCSDSConfig

    def __init__(self, cfg: LMCSDSConfig, prior: DiffusionPrior, seed: int = 0):
        super().__init__(cfg, prior, seed)
        folder = find_corrective(prior.folder, prior.name, cfg.corrective)
        self.corrective: ManifoldCorrective = load_corrective(folder, prior.device)
        check_compatible(self.corrective, prior, folder)
        log.info("lmc-sds: corrective from %s", folder)
        self.corrective_dir: Path = folder

    def direction(self, z, z_t, t, eps, text, generator, cameras):
        """g = (ω(ε_φ(z_t, y, t) − ε_φ(z_t, t)) + (b̂(z, t) − ẑ_t)) / ω (eq. 6b + 9; no use for the cameras)."""
        prior = self.prior
        if self.fixed_noise_seed is not None:  # L_lmc keeps sampling: its own z'_t, one more UNet pass
            z_t_lmc = prior.add_noise(z, self.sample_noise(z.shape, generator), t)
            e = prior.predict_noise(
                torch.cat([z_t, z_t, z_t_lmc]),
                torch.cat([t, t, t]),
                torch.cat([text.uncond, text.cond, text.uncond]),
            )
            e_uncond, e_cond, e_uncond_lmc = e.chunk(3)
        else:  # one ε for both terms: z'_t = z_t
            z_t_lmc = z_t
            e = prior.predict_noise(
                torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([text.uncond, text.cond])
            )
            e_uncond, e_cond = e.chunk(2)
            e_uncond_lmc = e_uncond
        omega = self.cfg.guidance_scale
        grad_cond = omega * (e_cond - e_uncond)  # eq. 6b
        z_hat = denoised_estimate(prior, z_t_lmc, t, e_uncond_lmc, self.corrective.cfg.x0_clip)
        b_hat = renormalise(self.corrective(z, t.float() / prior.num_train_timesteps), z_hat)  # eq. 10
        grad_lmc = b_hat - z_hat  # eq. 9
        return (grad_cond + grad_lmc) / omega, {
            "cond_norm": float((grad_cond / omega).flatten(1).norm(dim=1).mean()),
            "lmc_norm": float((grad_lmc / omega).flatten(1).norm(dim=1).mean()),
        }
