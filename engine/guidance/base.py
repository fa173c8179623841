"""What every guidance method shares: its output type, prompt embeddings, timestep sampling, weighting.

A guidance turns rendered images into a *surrogate loss* whose gradient w.r.t. the images is the
method's score-distillation gradient (the UNet is never differentiated). Methods live one per file
(``sds.py``, …); only what is truly common is here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from engine.configbase import Config, setting
from engine.priors.base import DiffusionPrior
from engine.priors.identity import PriorIdentity


@dataclass
class GuidanceOutput:
    """Result of one guidance evaluation (cf. diffusers' ``DDPMSchedulerOutput``)."""

    loss: Tensor
    """Scalar surrogate loss; ``loss.backward()`` delivers the method's gradient to the images."""
    grad_norm: float
    """Mean per-image L2 norm of the gradient w.r.t. the prior-space image (diagnostic)."""
    t: Int[Tensor, " B"]
    """Timesteps used (integers in [0, T))."""
    extras: dict[str, float] = field(default_factory=dict)
    """Method-specific scalars for logging."""


@dataclass
class PromptEmbeddings:
    """Text conditioning for a batch of views."""

    cond: Float[Tensor, "B S D"]
    """Embedding of each view's prompt (view suffix included when enabled)."""
    uncond: Float[Tensor, "B S D"]
    """Embedding of the empty prompt, repeated per view (classifier-free guidance)."""
    plain: Float[Tensor, "B S D"] | None = None
    """Embedding of the prompt without its view suffix, per view (None: ``cond`` has no suffix)."""

    @property
    def view_free(self) -> Float[Tensor, "B S D"]:
        """The prompt as a model of the renders must see it: without the view suffix. Only the pretrained
        ε_φ is given view-dependent prompts; a learned model of the renders (ESD's ε_ψ) is conditioned on
        the camera itself, so a suffix would leak the view into its camera-free branch ε_ψ(x_t, t, ∅, y)
        and it would no longer be the camera-marginal score of ESD eq. 8–9 (ProlificDreamer and
        threestudio give their LoRA model the plain prompt too)."""
        return self.cond if self.plain is None else self.plain


@dataclass
class TimestepConfig(Config):
    """How diffusion timesteps are drawn: t/T ~ U(t_min, t_max(step))."""

    t_min: float = setting(0.02, ge=0.0, le=1.0)
    """Lower end of t/T (DreamFusion and LMC-SDS use 0.02)."""
    t_max: float = setting(0.98, ge=0.0, le=1.0)
    """Upper end of t/T at the start of the run."""
    anneal: Literal["none", "linear", "step"] = "none"
    """none: fixed range; linear: t_max falls linearly to ``t_max_end`` over the run; step: t_max drops to
    ``t_max_end`` at ``anneal_at`` of the run (ProlificDreamer's 0.98 → 0.50)."""
    t_max_end: float = setting(0.5, ge=0.0, le=1.0)
    """t_max at the end of annealing."""
    anneal_at: float = setting(0.5, ge=0.0, le=1.0)
    """Fraction of the run where the step schedule switches."""

    def check(self) -> None:
        if not self.t_min < self.t_max:
            raise ValueError(f"t_min must be below t_max (got {self.t_min}, {self.t_max})")
        if self.anneal != "none" and not (self.t_min < self.t_max_end <= self.t_max):
            raise ValueError("t_max_end must lie in (t_min, t_max] when annealing")

    def t_max_at(self, step: int, total: int) -> float:
        frac = step / max(total, 1)
        if self.anneal == "linear":
            return self.t_max + (self.t_max_end - self.t_max) * frac
        if self.anneal == "step":
            return self.t_max_end if frac >= self.anneal_at else self.t_max
        return self.t_max

    def sample(
        self, n: int, num_train_timesteps: int, step: int, total: int, generator: torch.Generator
    ) -> Tensor:
        """n integer timesteps, uniform over the current range (drawn on the CPU for reproducibility)."""
        lo = int(self.t_min * num_train_timesteps)
        hi = max(int(self.t_max_at(step, total) * num_train_timesteps), lo + 1)
        return torch.randint(lo, hi, (n,), generator=generator)


Weighting = Literal["sds", "uniform"]


def weight(
    kind: Weighting, alphas_cumprod: Float[Tensor, " T"], t: Int[Tensor, " B"]
) -> Float[Tensor, "B 1 1 1"]:
    """w(t): ``sds`` = σ_t² = 1 − ᾱ_t (DreamFusion's choice); ``uniform`` = 1 (LMC-SDS experiments)."""
    if kind == "sds":
        w = 1.0 - alphas_cumprod[t]
    elif kind == "uniform":
        w = torch.ones_like(alphas_cumprod[t])
    else:
        raise ValueError(f"unknown weighting {kind!r}: use 'sds' or 'uniform'")
    return w.reshape(-1, 1, 1, 1)


def surrogate_loss(z: Float[Tensor, "B C h w"], grad: Float[Tensor, "B C h w"]) -> Tensor:
    """Loss whose gradient w.r.t. ``z`` is ``grad / B``.

    With target = sg(z − g):  L = ½‖z − target‖² / B  ⇒  ∂L/∂z = (z − (z − g)) / B = g / B.
    """
    target = (z - grad).detach()
    return 0.5 * ((z - target) ** 2).sum() / z.shape[0]


REGISTRY: dict[str, type[GuidanceConfig]] = {}
"""Every guidance method by name, filled as method modules are imported (``engine.guidance`` imports all)."""


@dataclass
class GuidanceConfig(Config, ABC):
    """What every guidance method's config has; a method is a subclass that describes itself.

    A subclass that sets ``name`` is registered under it (the CLI's ``--method``, the server's
    ``method``, ``/v1/health``'s list, the add-on's menu and the bench all come from the registry), so a
    new method is one file: its config (defaults, bounds, ``check()``, ``setup()``) and its
    :class:`Guidance`. Subclasses override defaults by redeclaring a field.
    """

    name: ClassVar[str]
    """Method name, e.g. ``sds`` (CLI ``--method``, server ``method``)."""
    label: ClassVar[str]
    """Short display name, e.g. ``SDS``."""
    summary: ClassVar[str]
    """One line on what the method is for (menus, ``--help``, ``/v1/health``)."""
    order: ClassVar[int] = 100
    """Place in lists (lower first)."""

    guidance_scale: float = setting(100.0, ge=0.0, serve=(0.0, 1000.0))
    """Classifier-free guidance scale ω."""
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    """Timestep range and annealing."""
    weighting: Weighting = "sds"
    """w(t): sds = 1 − ᾱ_t (DreamFusion), uniform = 1."""
    grad_clip: float | None = setting(None, gt=0.0)
    """Clamp each element of the gradient to ±grad_clip (None: off)."""
    fixed_noise: bool = False
    """Fixed-ε seeds: keep the prompt term's noise ε fixed for the whole run (seeded by ``train.seed``;
    t stays random), so each seed gives its own asset (LMC-SDS paper §4)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is None:
            return
        if name in REGISTRY and REGISTRY[name].__qualname__ != cls.__qualname__:
            raise TypeError(f"guidance method {name!r} is registered twice ({REGISTRY[name]} and {cls})")
        for attr in ("label", "summary"):
            if not isinstance(cls.__dict__.get(attr), str):
                raise TypeError(f"guidance method {name!r} ({cls.__qualname__}) must set {attr}")
        REGISTRY[name] = cls

    @classmethod
    def variants(cls) -> list[type[GuidanceConfig]]:
        """Every registered method (the schema walker lists the union of their settings)."""
        return sorted(REGISTRY.values(), key=lambda c: (c.order, c.name))

    def check_prior(self, prior: PriorIdentity) -> None:  # noqa: B027 (a deliberate no-op default)
        """Refuse a prior this method cannot work with, from its identity alone (nothing is loaded), so a
        request fails at the door rather than as a job; e.g. LMC-SDS needs a corrective for the prior."""

    @abstractmethod
    def setup(self, prior: DiffusionPrior, seed: int = 0) -> Guidance:
        """The method's :class:`Guidance` for ``prior``, after :meth:`validate`; ``seed`` (the run's seed)
        seeds the fixed ε and any method state."""


class Guidance(ABC):
    """Base class: one instance per run, holding the prior and any method state (e.g. ESD's LoRA)."""

    def __init__(self, cfg: GuidanceConfig, prior: DiffusionPrior, seed: int = 0):
        self.cfg = cfg
        self.prior = prior
        self.fixed_noise_seed = seed if cfg.fixed_noise else None
        """When set, :meth:`prompt_noise` returns the same ε every step (fixed-ε seeds)."""
        self._fixed_noise: dict[tuple[int, ...], Tensor] = {}

    needs_cameras: bool = False
    """Whether :meth:`direction` uses the cameras (ESD and VSD learn a camera-conditioned model of the
    renders); the others ignore them."""

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
        """Surrogate loss for rendered ``images`` (RGB in [0, 1], differentiable).

        What every score-distillation method does, in this order of random draws: encode the images to
        z, draw t (:meth:`sample_timesteps`), then the prompt term's ε (:meth:`prompt_noise`), noise
        z_t = √ᾱ_t z + √(1−ᾱ_t) ε; then the method's :meth:`direction` g (without autograd; the UNet
        Jacobian is never propagated) and :meth:`output`'s w(t)·g through the surrogate loss.
        ``cameras`` are the camera-to-world matrices the images were rendered from.
        """
        if self.needs_cameras and cameras is None:
            raise ValueError(
                f"{self.cfg.label} needs the camera-to-world matrix of every view: pass cameras="
            )
        z = self.prior.encode_images(images)
        if self.needs_cameras and cameras.shape != (z.shape[0], 4, 4):
            raise ValueError(f"cameras must be ({z.shape[0]}, 4, 4) c2w matrices, got {tuple(cameras.shape)}")
        t = self.sample_timesteps(z, step, total_steps, generator)
        eps = self.prompt_noise(z.shape, generator)
        with torch.no_grad():
            z0 = z.detach()
            z_t = self.prior.add_noise(z0, eps, t)
            g, extras = self.direction(z0, z_t, t, eps, text, generator, cameras)
        return self.output(z, g, t, extras)

    @abstractmethod
    def direction(
        self,
        z: Float[Tensor, "B C h w"],
        z_t: Float[Tensor, "B C h w"],
        t: Int[Tensor, " B"],
        eps: Float[Tensor, "B C h w"],
        text: PromptEmbeddings,
        generator: torch.Generator,
        cameras: Float[Tensor, "B 4 4"] | None,
    ) -> tuple[Float[Tensor, "B C h w"], dict[str, float]]:
        """The method's update direction g for the (detached) latents ``z`` noised to ``z_t`` with ``eps``
        at ``t`` (before w(t) and clipping), and scalars to log. Runs under ``torch.no_grad()``; further
        random draws come from ``generator``."""

    def sample_timesteps(
        self, z: Float[Tensor, "B C h w"], step: int, total_steps: int, generator: torch.Generator
    ) -> Int[Tensor, " B"]:
        """One timestep per image of ``z`` from the config's schedule, on ``z``'s device."""
        t = self.cfg.timesteps.sample(
            z.shape[0], self.prior.num_train_timesteps, step, total_steps, generator
        )
        return t.to(z.device)

    def output(
        self,
        z: Float[Tensor, "B C h w"],
        g: Float[Tensor, "B C h w"],
        t: Int[Tensor, " B"],
        extras: dict[str, float] | None = None,
    ) -> GuidanceOutput:
        """The result for the method's direction ``g``: grad = w(t)·g, clamped to ±grad_clip when set,
        delivered to ``z`` through :func:`surrogate_loss`."""
        grad = weight(self.cfg.weighting, self.prior.alphas_cumprod, t) * g
        if self.cfg.grad_clip is not None:
            grad = grad.clamp(-self.cfg.grad_clip, self.cfg.grad_clip)
        return GuidanceOutput(
            loss=surrogate_loss(z, grad),
            grad_norm=float(grad.flatten(1).norm(dim=1).mean()),
            t=t,
            extras=extras or {},
        )

    def sample_noise(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> Tensor:
        """Fresh ε ~ N(0, I), drawn on the CPU generator so runs repeat across devices."""
        return torch.randn(tuple(shape), generator=generator).to(self.prior.device)

    def prompt_noise(self, shape: torch.Size | tuple[int, ...], generator: torch.Generator) -> Tensor:
        """ε of the prompt (conditional) term.

        Fixed-ε seeds (LMC-SDS paper §4, "Increasing Sample Diversity"): with ``fixed_noise_seed`` set, the
        same ε (drawn once from that seed, per shape) is used for the whole run while t stays random, so the
        optimisation does not average over noise and different seeds give different assets. Otherwise a
        fresh ε from ``generator``. The fixed ε is a pure function of (seed, shape), so a resumed run gets
        it back without checkpointing it, and ``generator`` is not consumed (the other streams stay put).
        """
        if self.fixed_noise_seed is None:
            return self.sample_noise(shape, generator)
        key = tuple(int(s) for s in shape)
        if key not in self._fixed_noise:
            g = torch.Generator().manual_seed(self.fixed_noise_seed)
            self._fixed_noise[key] = torch.randn(key, generator=g).to(self.prior.device)
        return self._fixed_noise[key]

    def state_dict(self) -> dict[str, Any]:
        """Method state to checkpoint (none for stateless methods)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} has no state, got keys {sorted(state)}")
