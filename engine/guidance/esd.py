"""Entropic Score Distillation (ESD; "Taming mode collapse in score distillation", eq. 7–9, Algorithm 1),
with Variational Score Distillation (VSD, ProlificDreamer) as its λ = 0 case.

ESD adds λ·H[q_t^θ(x_t | y)], the entropy of the distribution of renders over all cameras, to the
maximum-likelihood objective SDS and VSD reduce to (eq. 6–7). By Theorem 1 its gradient splits into a
camera-free and a camera-conditioned score of the renders (eq. 9); with ε-predictions in place of
scores (σ_t ∇ log p = −ε), Algorithm 1 updates the field along

    ∇_θ = E_{t,ε,c}[ w(t) · (ε̂^ω_φ(z_t, y, t) − λ·ε_ψ(z_t, t, ∅, y) − (1−λ)·ε_ψ(z_t, t, c, y)) · ∂z/∂θ ],
    z_t = √ᾱ_t z + √(1−ᾱ_t) ε,    ε̂^ω_φ = ε_φ(z_t, t) + ω·(ε_φ(z_t, y, t) − ε_φ(z_t, t))    (CFG, §4.2)

(eq. 8–9 are written as the ascent direction σ_t∇log p − …; the descent step of Algorithm 1 has the
opposite sign, and that is the one implemented, matching SDS's ε̂ − ε). λ = 0 is exactly VSD (eq. 2):
ε̂^ω_φ − ε_ψ(z_t, t, c, y). As in SDS the √ᾱ_t of ∂z_t/∂z is absorbed into w(t), no UNet Jacobian is
propagated, and the gradient reaches the field through ½‖z − sg(z − g)‖²/B.

ε_ψ (:class:`engine.priors.lora.LoRADenoiser`) is the prior's UNet with a LoRA and a camera embedding
(ProlificDreamer's parameterisation). It is given the prompt without its view suffix
(``PromptEmbeddings.view_free``), in its fit and in both branches: only the pretrained ε_φ sees view
suffixes, so ε_ψ(x_t, t, ∅, y) is the camera-marginal score of eq. 8–9. After each field gradient it is fitted to the current renders
(detached) with the diffusion loss of eq. 3, ‖ε_ψ(α_t z + σ_t ε', t, c, y) − ε'‖² (w(t) = 1 as in
ProlificDreamer's code), where each view's camera is replaced by ∅ with probability p_∅ so the
camera-free branch is learned too — the classifier-free-guidance training the paper follows (Algorithm 1
drops per step; per view is the same at batch 1 and the standard CFG recipe for batches).

Random draws per call, in order: the timesteps and ε of the distillation term, then per ε_ψ update the
dropped cameras, its timesteps and its ε'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine.configbase import setting
from engine.guidance.base import Guidance, GuidanceConfig, TimestepConfig
from engine.guidance.sds import cfg_noise
from engine.priors.base import DiffusionPrior
from engine.priors.lora import LoRADenoiser


@dataclass
class ESDConfig(GuidanceConfig):
    """Entropic Score Distillation (ESD): SDS's prompt score minus a learned, partly camera-free score of
    the renders (λ = 0 is VSD)."""

    name = "esd"
    label = "ESD"
    summary = (
        "Entropic Score Distillation: fewer Janus (multi-face) artefacts and more varied results; slower"
    )
    order = 20

    lam: float = setting(0.5, ge=0.0, le=1.0)
    """λ, weight of the entropy of the renders over cameras (eq. 7): the field follows ε̂_φ − λ·ε_ψ(∅) −
    (1−λ)·ε_ψ(c). 0 = VSD; 1 = only the camera-free score; 0.5 is the paper's ablation choice."""
    guidance_scale: float = setting(7.5, ge=0.0, serve=(0.0, 1000.0))
    """Classifier-free guidance scale ω of the prior's score ε̂_φ (ProlificDreamer uses 7.5)."""
    timesteps: TimestepConfig = field(
        default_factory=lambda: TimestepConfig(anneal="step", t_max_end=0.5, anneal_at=0.2)
    )
    """Timesteps of the distillation term: t/T ~ U(0.02, 0.98), then U(0.02, 0.50) after 20 % of the run
    (ProlificDreamer's schedule, which ESD keeps: the switch at 5k of 25k steps)."""
    fixed_noise: bool = False
    """Fixed-ε seeds: keep ε of the distillation term fixed for the whole run (seeded by ``train.seed``; t
    stays random). ε_ψ's own training noise stays fresh."""
    lora_rank: int = setting(4, ge=1, serve=(1, 64))
    """Rank of ε_ψ's LoRA adapters on the UNet's attention projections (to_q, to_k, to_v, to_out.0)."""
    camera_hidden: int = setting(64, ge=1, serve=(1, 1024))
    """Hidden width of ε_ψ's camera MLP (flattened c2w → time-embedding offset)."""
    lora_lr: float = setting(1e-4, gt=0.0)
    """AdamW learning rate of ε_ψ (LoRA and camera MLP; ProlificDreamer uses 1e-4)."""
    lora_steps: int = setting(1, ge=1, serve=(1, 16))
    """ε_ψ updates per field step (each with fresh t, noise and camera dropout)."""
    camera_dropout: float = setting(0.1, ge=0.0, lt=1.0)
    """p_∅: probability that a view's camera is dropped in an ε_ψ update, which trains ε_ψ(x_t, t, ∅, y)."""
    lora_timesteps: TimestepConfig = field(default_factory=lambda: TimestepConfig(t_min=0.0, t_max=1.0))
    """Timesteps of ε_ψ's training (ProlificDreamer: the whole range t/T ~ U(0, 1), no annealing)."""

    def check(self) -> None:
        if self.lam > 0 and self.camera_dropout == 0:
            raise ValueError(
                "camera_dropout must be > 0 when lam > 0: only dropped cameras train ε_ψ(x_t, t, ∅, y)"
            )

    def setup(self, prior: DiffusionPrior, seed: int = 0) -> ESDGuidance:
        """The guidance for ``prior``; ``seed`` (the run's seed) initialises ε_ψ and seeds the fixed ε."""
        self.validate()
        return ESDGuidance(self, prior, seed)


@dataclass
class VSDConfig(ESDConfig):
    """Variational Score Distillation (VSD, ProlificDreamer): ESD with λ = 0, i.e. the field follows
    ε̂_φ − ε_ψ(x_t, t, c, y)."""

    name = "vsd"
    label = "VSD"
    summary = "Variational Score Distillation (ProlificDreamer): ESD with λ = 0; slower"
    order = 21

    lam: float = setting(0.0, ge=0.0, le=1.0)
    """λ, weight of the entropy of the renders over cameras (ESD eq. 7); 0 is VSD, > 0 turns it into ESD."""


class ESDGuidance(Guidance):
    """ESD / VSD; owns ε_ψ and its AdamW optimiser, which are checkpointed with the run."""

    cfg: ESDConfig

    def __init__(self, cfg: ESDConfig, prior: DiffusionPrior, seed: int = 0):
        super().__init__(cfg, prior, seed)
        # ε_ψ's random initial weights (LoRA A, camera MLP) come from ``seed`` alone, without consuming the
        # global generator: the same run seed gives the same ε_ψ whatever ran before.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.eps_psi = LoRADenoiser(prior, rank=cfg.lora_rank, camera_hidden=cfg.camera_hidden)
        self.optimizer = torch.optim.AdamW(self.eps_psi.parameters(), lr=cfg.lora_lr)

    needs_cameras = True

    def direction(self, z, z_t, t, eps, text, generator, cameras):
        """g = ε̂^ω_φ − λ·ε_ψ(∅) − (1−λ)·ε_ψ(c) (eq. 9), then ``lora_steps`` fits of ε_ψ to the renders."""
        eps_phi, _, _ = cfg_noise(self.prior, z_t, t, text, self.cfg.guidance_scale)  # LoRA off: frozen prior
        score, gap, diff = self.render_score(z_t, t, text.view_free, cameras)  # ε_ψ never sees view suffixes
        g = eps_phi - score
        losses, dropped = [], 0
        for _ in range(self.cfg.lora_steps):
            loss, n = self.train_eps_psi(z, text.view_free, cameras, generator)
            losses.append(loss)
            dropped += n
        extras = {"lora_loss": sum(losses) / len(losses), "cameras_dropped": float(dropped)}
        if gap is not None:
            extras["psi_camera_gap"] = gap
            # The part of the field's update λ controls: g = ε̂_φ − ε_ψ(c) + λ·(ε_ψ(c) − ε_ψ(∅)).
            share = self.cfg.lam * diff.flatten(1).norm(dim=1) / g.flatten(1).norm(dim=1).clamp(min=1e-12)
            extras["psi_lam_share"] = float(share.mean())
        return g, extras

    def render_score(
        self,
        z_t: Float[Tensor, "B C h w"],
        t: Int[Tensor, " B"],
        cond: Float[Tensor, "B S D"],
        cameras: Float[Tensor, "B 4 4"],
    ) -> tuple[Float[Tensor, "B C h w"], float | None, Float[Tensor, "B C h w"] | None]:
        """λ·ε_ψ(z_t, t, ∅, y) + (1−λ)·ε_ψ(z_t, t, c, y) (eq. 9), both branches in one UNet batch, how far
        apart the branches are — mean over images of ‖ε_ψ(c) − ε_ψ(∅)‖ / ‖ε_ψ(∅)‖ — and ε_ψ(c) − ε_ψ(∅)
        itself (both None unless both branches are computed). At initialisation the two are equal (the camera MLP's output layer starts at zero), so
        this says how much of λ's effect ε_ψ has learnt so far.

        A branch with weight 0 is skipped, so VSD (λ = 0) costs one ε_ψ evaluation, not two.
        """
        lam, b = self.cfg.lam, z_t.shape[0]
        branches = [(drop, w) for drop, w in ((True, lam), (False, 1.0 - lam)) if w != 0.0]
        n = len(branches)
        drop = torch.tensor([d for d, _ in branches]).repeat_interleave(b)
        eps = self.eps_psi.predict_noise(
            z_t.repeat(n, 1, 1, 1), t.repeat(n), cond.repeat(n, 1, 1), cameras.repeat(n, 1, 1), drop
        )
        parts = eps.chunk(n)
        score = sum(w * e for (_, w), e in zip(branches, parts))
        if n < 2:
            return score, None, None
        e_free, e_cam = parts
        diff = e_cam - e_free
        gap = diff.flatten(1).norm(dim=1) / e_free.flatten(1).norm(dim=1).clamp(min=1e-12)
        return score, float(gap.mean()), diff

    def train_eps_psi(
        self,
        z: Float[Tensor, "B C h w"],
        cond: Float[Tensor, "B S D"],
        cameras: Float[Tensor, "B 4 4"],
        generator: torch.Generator,
    ) -> tuple[float, int]:
        """One AdamW step on ‖ε_ψ(z_t', t', c or ∅, y) − ε'‖² (eq. 3) for the detached renders ``z``.

        Returns the loss before the step and how many cameras were dropped (∅).
        """
        b = z.shape[0]
        drop = torch.rand(b, generator=generator) < self.cfg.camera_dropout
        t = self.cfg.lora_timesteps.sample(b, self.prior.num_train_timesteps, 0, 1, generator).to(z.device)
        noise = self.sample_noise(z.shape, generator)
        z_t = self.prior.add_noise(z, noise, t)
        with torch.enable_grad():  # direction() runs without autograd; ε_ψ's own fit needs it
            pred = self.eps_psi.predict_noise(z_t, t, cond, cameras, drop, grad=True)
            loss = ((pred - noise) ** 2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self.optimizer.step()
        return float(loss.detach()), int(drop.sum())

    def state_dict(self) -> dict[str, Any]:
        """ε_ψ's weights (LoRA + camera MLP) and its optimiser, for an exact resume."""
        return {"eps_psi": self.eps_psi.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.eps_psi.load_state_dict(state["eps_psi"])
        self.optimizer.load_state_dict(state["optimizer"])
