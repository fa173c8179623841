"""The learned manifold corrective b̂_ψ of LMC-SDS (Kolotouros et al. 2024, §4 and appendix 0.A).

A diffusion model's one-step denoised estimate ẑ_t = z_φ(z_t, t) of an image z is not z but a
t-dependent "blurred" version of it, ẑ_t = b(z̃, t) (eq. 8: b is the frequency bias of the denoiser, z̃ the
projection of z onto the learned manifold). b̂_ψ(z, t) is a small U-Net trained on triplets (z, ẑ_t, t) of
on-manifold images to imitate that bias, so LMC-SDS can compare ẑ_t with b̂(z, t) instead of with z
(eq. 9; :mod:`engine.guidance.lmc`). Being deterministic it learns the mean of ẑ_t given (z, t).

Architecture (appendix 0.A): a standard U-Net. ``levels`` encoder levels of two 3×3 Conv/ReLU followed by
a 2×2 MaxPool, 32 filters at the first level doubling per level, a bottleneck of two Conv/ReLU, a
decoder mirroring the encoder (2×2 transposed-conv upsampling, concatenated skip connection, two
Conv/ReLU, filters halving), and a final 1×1 Conv with tanh. The timestep enters as a 10-dimensional
frequency encoding of t/T concatenated to every input pixel. The paper uses four levels on 128 px images;
the built-in prior's 32 px images use three (32 → 16 → 8 → bottleneck at 4×4, which still sees the
whole image, as the large-t blur needs); Stable Diffusion's 64×64 latents can use four. One deviation,
switchable (``CorrectiveConfig.residual``): by default the output is a zero-initialised residual,
b̂ = z + tanh(conv(…)), because a CPU budget of ~1k training steps (the paper: 750k) is not enough for
the plain form to learn the near-identity that small t needs.

Normalisation (eq. 10): the raw output is renormalised to the standard deviation of ẑ_t while keeping
its own mean, b̂ ← σ(ẑ_t)/σ(b̂)·(b̂ − μ(b̂)) + μ(b̂), with μ, σ taken **per image and per channel** over
the pixels (see :func:`renormalise`). The same function is used in training (eq. 10) and in guidance
(eq. 9, where the paper "absorbs" it into b̂).

Where correctives live: a prior's own corrective ships in ``<prior folder>/corrective/`` (the built-in
prior's is ``engine/priors/builtin/corrective/``: it models that prior's bias, so it belongs with its
weights); any other location is passed explicitly (``LMCSDSConfig.corrective``). A corrective folder holds
``model.safetensors`` (fp16), ``config.json`` (:class:`CorrectiveConfig` + provenance) and
``MODEL_CARD.md``. ``scripts/train_corrective.py`` makes one.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from engine.configbase import from_dict, to_dict
from engine.priors.base import DiffusionPrior

log = logging.getLogger(__name__)

CORRECTIVE_SUBDIR = "corrective"
"""A prior folder's shipped corrective lives in this subfolder."""
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
NORM_EPS = 1e-6
"""Floor of σ(b̂) in :func:`renormalise` (a constant channel would otherwise divide by zero)."""


@dataclass
class CorrectiveConfig:
    """Architecture of b̂_ψ and how the ẑ_t it imitates is computed (saved as ``config.json``)."""

    channels: int = 3
    """Channels of the prior space z (3 for pixel priors, 4 for Stable Diffusion latents)."""
    levels: int = 3
    """Encoder levels (each two Conv/ReLU + MaxPool); the paper uses 4 at 128 px, the 32 px built-in prior 3.
    The spatial size of z must be divisible by 2**levels."""
    base_filters: int = 32
    """Filters of the first level; doubled per level in the encoder, halved in the decoder (paper: 32)."""
    time_frequencies: int = 5
    """Frequencies of the timestep encoding: sin and cos of 2^k·π·t/T, k < n, give 2n channels (paper: 10)."""
    out_activation: Literal["tanh", "none"] = "tanh"
    """tanh (paper; pixel priors, whose z lies in [-1, 1]) or none (latent priors, whose z is unbounded)."""
    residual: bool = True
    """b̂ = z + act(conv(…)) with the output conv zero-initialised, so b̂ starts as the identity (SDS's
    L_proj compares ẑ_t with z itself); False: b̂ = act(conv(…)) as in the paper. The paper trains for 750k
    steps; in the ~1k steps a CPU affords, the plain form was still worse than the identity for t/T < 0.6
    (eq. 10 loss 0.0106 vs 0.0011 at t/T < 0.2 after 150 steps), which would inject its error into eq. 9."""
    x0_clip: float | None = 1.0
    """ẑ_t is clamped to ±x0_clip, as the prior's own sampler clips x₀ (pixel priors: 1.0, the data range;
    Stable Diffusion: None). Without it ẑ_t at t/T → 0.98 is dominated by the 1/√ᾱ_t amplified ε error."""

    def validate(self) -> None:
        for name in ("channels", "levels", "base_filters", "time_frequencies"):
            if getattr(self, name) < 1:
                raise ValueError(f"corrective {name} must be >= 1 (got {getattr(self, name)})")
        if self.out_activation not in ("tanh", "none"):
            raise ValueError(f"corrective out_activation must be tanh or none (got {self.out_activation!r})")

    def setup(self) -> ManifoldCorrective:
        self.validate()
        return ManifoldCorrective(self)


def time_encoding(t: Float[Tensor, " B"], frequencies: int) -> Float[Tensor, "B 2n"]:
    """Frequency encoding of t ∈ [0, 1]: [sin(2^k π t), cos(2^k π t)] for k = 0 … n−1."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=t.device, dtype=torch.float32)
    angles = t.float()[:, None] * scales
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class ManifoldCorrective(nn.Module):
    """b̂_ψ(z, t): a U-Net imitating the denoiser's t-dependent bias on on-manifold images."""

    def __init__(self, cfg: CorrectiveConfig):
        super().__init__()
        self.cfg = cfg
        widths = [cfg.base_filters * 2**i for i in range(cfg.levels + 1)]
        cin = cfg.channels + 2 * cfg.time_frequencies
        self.down = nn.ModuleList()
        for w in widths[:-1]:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.bottleneck = _double_conv(cin, widths[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w_in, w in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_in, w, 2, stride=2))
            self.merge.append(_double_conv(2 * w, w))
        self.head = nn.Conv2d(widths[0], cfg.channels, 1)
        if cfg.residual:  # start exactly at b̂ = z
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, z: Float[Tensor, "B C h w"], t: Float[Tensor, " B"]) -> Float[Tensor, "B C h w"]:
        """Raw b̂_ψ(z, t) (before the eq. 10 renormalisation); ``t`` is t/T in [0, 1]."""
        b, c, h, w = z.shape
        k = 2**self.cfg.levels
        if c != self.cfg.channels or h % k or w % k:
            raise ValueError(
                f"the corrective takes z of shape (B, {self.cfg.channels}, h, w) with h, w divisible by {k} "
                f"({self.cfg.levels} levels), got {tuple(z.shape)}"
            )
        enc = time_encoding(t.to(z.device), self.cfg.time_frequencies).to(z.dtype)
        x = torch.cat([z, enc[:, :, None, None].expand(-1, -1, h, w)], dim=1)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        x = self.head(x)
        x = torch.tanh(x) if self.cfg.out_activation == "tanh" else x
        return z + x if self.cfg.residual else x


def renormalise(
    b: Float[Tensor, "B C h w"], target: Float[Tensor, "B C h w"], eps: float = NORM_EPS
) -> Float[Tensor, "B C h w"]:
    """Eq. 10's normalisation: σ(target)/σ(b) · (b − μ(b)) + μ(b), statistics per image and per channel.

    The result keeps b's own mean and takes ẑ_t's (``target``'s) standard deviation, so b̂ cannot
    underestimate the image dynamics of ẑ_t, which at large t made optimised images over-saturated and
    over-contrasted (paper, text before eq. 10). Why per channel and not per image: in latent space the
    channels are different quantities on different scales (pooling them mixes unrelated statistics), and
    in rgb the drift the paper describes is one of colour (saturation), which a single per-image σ would
    leave uncorrected between channels. σ is the population standard deviation over the h·w pixels,
    floored at ``eps``. Differentiable w.r.t. ``b`` (training); ``target`` is a constant.
    """
    mu_b = b.mean(dim=(2, 3), keepdim=True)
    sigma_b = b.std(dim=(2, 3), keepdim=True, unbiased=False).clamp_min(eps)
    sigma_t = target.detach().std(dim=(2, 3), keepdim=True, unbiased=False)
    return sigma_t / sigma_b * (b - mu_b) + mu_b


def denoised_estimate(
    prior: DiffusionPrior,
    z_t: Float[Tensor, "B C h w"],
    t: Int[Tensor, " B"],
    eps_uncond: Float[Tensor, "B C h w"],
    x0_clip: float | None,
) -> Float[Tensor, "B C h w"]:
    """ẑ_t = z_φ(z_t, t) = (z_t − √(1−ᾱ_t) ε_φ(z_t, t)) / √ᾱ_t, clamped to ±x0_clip when set.

    The unconditional one-step denoised estimate of eq. 7; training (the targets of eq. 10) and guidance
    (eq. 9) both use this function, so they agree on the clamp.
    """
    z0 = prior.predict_x0(z_t, t, eps_uncond)
    return z0.clamp(-x0_clip, x0_clip) if x0_clip is not None else z0


# ---------------------------------------------------------------------------------------------- storage


def save_corrective(
    model: ManifoldCorrective, folder: str | Path, info: dict[str, Any] | None = None
) -> Path:
    """Write ``model.safetensors`` (fp16: half the size, ample precision for a blur model) and
    ``config.json`` (``{"config": CorrectiveConfig, **info}``; ``info`` is provenance, e.g. the prior)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS_NAME))
    record = {"config": to_dict(model.cfg), **(info or {})}
    (folder / CONFIG_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return folder


def read_corrective_info(folder: str | Path) -> dict[str, Any]:
    """The ``config.json`` record of a corrective folder (config + provenance)."""
    return json.loads((Path(folder) / CONFIG_NAME).read_text())


def load_corrective(folder: str | Path, device: torch.device | str = "cpu") -> ManifoldCorrective:
    """A frozen b̂_ψ (fp32, eval mode, no grad) from a folder written by :func:`save_corrective`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} is not a manifold corrective: it lacks {name}")
    cfg = from_dict(CorrectiveConfig, read_corrective_info(folder)["config"])
    model = cfg.setup()
    state = load_file(str(folder / WEIGHTS_NAME))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.requires_grad_(False).eval().to(device)


def shipped_corrective_dir(prior_folder: Path | None) -> Path | None:
    """``<prior folder>/corrective`` for a prior in a local folder (whether or not it exists); None for a
    hub model."""
    return prior_folder / CORRECTIVE_SUBDIR if prior_folder is not None else None


def find_corrective(prior_folder: Path | None, prior_name: str, path: str | None = None) -> Path:
    """The corrective folder to use for the prior in ``prior_folder`` (None: a hub model) called
    ``prior_name`` in messages: ``path`` if given, else the prior's shipped one. Looks only at files, so
    a request is checked with it before any prior is loaded.

    Raises ``ValueError`` naming the prior, saying that it has no corrective and how to train one.
    """
    if path is not None:
        folder = Path(path).expanduser()
        if not (folder / WEIGHTS_NAME).is_file():
            raise ValueError(
                f"lmc-sds: no manifold corrective at {str(folder)!r} (it needs {WEIGHTS_NAME} and {CONFIG_NAME}); "
                "train one with `python scripts/train_corrective.py --prior ... --out DIR`"
            )
        return folder
    shipped = shipped_corrective_dir(prior_folder)
    if shipped is not None and (shipped / WEIGHTS_NAME).is_file():
        return shipped
    where = f" (looked in {shipped})" if shipped is not None else ""
    raise ValueError(
        f"lmc-sds needs a learned manifold corrective for the prior {prior_name}, and none exists{where}: "
        f"train one with `python scripts/train_corrective.py --prior SPEC` (for Stable Diffusion add "
        "`--images DIR`), then pass its folder with --guidance.corrective DIR, or use another method"
    )


def check_compatible(model: ManifoldCorrective, prior: DiffusionPrior, folder: Path) -> None:
    """Refuse a corrective made for another prior space; warn if it was trained on other prior weights."""
    c = model.cfg
    k = 2**c.levels
    if c.channels != prior.latent_channels or prior.latent_resolution % k:
        raise ValueError(
            f"the corrective in {folder} takes {c.channels}-channel z with sides divisible by {k}, but the prior "
            f"{prior.name} works in {prior.latent_channels}×{prior.latent_resolution}²: train one for this "
            "prior with scripts/train_corrective.py"
        )
    trained_for = read_corrective_info(folder).get("prior", {}).get("fingerprint")
    current = prior.fingerprint  # cheap: cached, and large weight files are sampled
    if trained_for and current and trained_for != current:
        log.warning(
            "the corrective in %s was trained for other weights of %s (fingerprint %s, now %s): retrain it "
            "with scripts/train_corrective.py",
            folder,
            prior.name,
            trained_for,
            current,
        )
