"""The ``DiffusionPrior`` interface: a frozen text-to-image diffusion model seen through what score
distillation needs (prompt embeddings, image → model space, ε-prediction, the noise schedule).

Shared logic lives here (prompt cache, resizing, the forward process, the UNet call); a concrete prior
only says how images enter and leave its model space (``_encode`` / ``_decode``). The diffusers and
transformers objects stay inside ``engine.priors``; :attr:`DiffusionPrior.unet` is read only by
:mod:`engine.priors.lora`, the adapter that attaches ESD's LoRA with peft. The interface knows nothing of
its users: guidance methods depend on priors, never the other way round.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from engine.priors.identity import weights_fingerprint
from engine.priors.words import check_words

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DConditionModel


def resize_square(rgb: Float[Tensor, "B C H W"], size: int) -> Float[Tensor, "B C size size"]:
    """Bilinear resize to ``size``×``size`` (antialiased when shrinking); differentiable; no-op if already there."""
    h, w = rgb.shape[-2:]
    if (h, w) == (size, size):
        return rgb
    return F.interpolate(
        rgb, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size or w > size
    )


def square_size(sample_size: int | Sequence[int], name: str) -> int:
    """A model config's ``sample_size`` as one int; non-square models are rejected."""
    if isinstance(sample_size, int):
        return sample_size
    h, w = sample_size
    if h != w:
        raise ValueError(f"{name}: only square priors are supported, this one has sample_size {h}x{w}")
    return int(h)


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception message, for one-line error reports."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


class DiffusionPrior(ABC):
    """A frozen text-to-image diffusion model seen through what score distillation needs.

    Attributes:
        name: where the weights came from, for messages, e.g. ``"pixel:/path"`` or ``"sd:stabilityai/…"``;
            code that needs the prior's identity reads :attr:`folder` and :attr:`fingerprint`, never this.
        device: where weights and every returned tensor live.
        dtype: weights dtype (fp16 on CUDA, fp32 elsewhere; see ``engine.device.prior_dtype``).
        resolution: native size in pixels of the images the model expects.
        latent_channels: channels of the model space ``z`` (3 for pixel models, 4 for SD).
        latent_resolution: spatial size of ``z`` (``resolution`` for pixel models, ``resolution / 8`` for SD).
        num_train_timesteps: length ``T`` of the training noise schedule; valid ``t`` are ``0 .. T-1``.
        alphas_cumprod: ᾱ_t for every t, float32 on ``device``, from the scheduler config.
        prediction_type: what the UNet was trained to predict (``epsilon``, ``v_prediction`` or ``sample``);
            :meth:`predict_noise` always converts to ε.
        x0_clip: the range ±x0_clip of clean ``z`` a sampler may clamp its x₀ estimates to (1.0 for pixel
            models: the data range ``2·rgb − 1``; None for latent models, whose latents are unbounded).
    """

    name: str
    folder: Path | None = None
    """The local diffusers folder the weights were loaded from (None: the model hub)."""
    device: torch.device
    dtype: torch.dtype
    resolution: int
    latent_channels: int
    latent_resolution: int
    num_train_timesteps: int
    alphas_cumprod: Float[Tensor, " T"]
    prediction_type: str
    x0_clip: float | None = None

    def __init__(
        self,
        *,
        name: str,
        device: torch.device,
        dtype: torch.dtype,
        unet: UNet2DConditionModel,
        text_encoder: nn.Module,
        tokenizer: Any,
        scheduler: DDPMScheduler,
    ) -> None:
        self.name = name
        self.device = torch.device(device)
        self.dtype = dtype
        self._unet = self._freeze(unet)
        self._text_encoder = self._freeze(text_encoder)
        self._tokenizer = tokenizer
        self._max_length = _token_length(tokenizer, text_encoder)
        self._prompt_cache: dict[str, Float[Tensor, "1 S D"]] = {}

        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(device=self.device, dtype=torch.float32)
        self.prediction_type = str(scheduler.config.prediction_type)
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"{name}: unsupported scheduler prediction_type {self.prediction_type!r}")

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the UNet weights of a local folder (:mod:`engine.priors.identity`); None for hub
        models. Correctives and per-prior settings are matched by it."""
        return weights_fingerprint(self.folder)

    def _freeze(self, module: nn.Module) -> nn.Module:
        """The one place weights are frozen, put in eval mode and cast to ``device`` / ``dtype``."""
        # torch's own ``to``: diffusers' override warns on every dtype cast about modules to keep in fp32,
        # even when the model lists none (the UNet, VAE and CLIP text encoder list none).
        return nn.Module.to(module.requires_grad_(False).eval(), device=self.device, dtype=self.dtype)

    # --- what a concrete prior provides -------------------------------------------------------------

    @abstractmethod
    def _encode(self, rgb: Float[Tensor, "B 3 R R"]) -> Float[Tensor, "B C r r"]:
        """Map float32 rgb in [0, 1] at native resolution to model space; must stay differentiable."""

    @abstractmethod
    def _decode(self, z: Float[Tensor, "B C r r"]) -> Float[Tensor, "B 3 R R"]:
        """Map model-space ``z`` back to rgb (roughly [0, 1]; the caller clamps). Called under no_grad."""

    def vocabulary_check(self, prompt: str) -> None:
        """With a word-level tokenizer, raise ``ValueError`` naming unknown words and the known ones
        (:func:`engine.priors.words.check_words`); open-vocabulary tokenizers: no-op."""
        check_words(self._tokenizer, prompt, self.name)

    # --- prompts -------------------------------------------------------------------------------------

    def encode_prompts(self, prompts: Sequence[str]) -> Float[Tensor, "B S D"]:
        """Text embeddings for ``prompts`` (``""`` is the unconditional prompt), in ``dtype`` on ``device``.

        Each distinct prompt string runs through the text encoder once per prior; later calls are served
        from a cache. Prompts are checked with :meth:`vocabulary_check` and must fit the encoder's
        token length (an error instead of silent truncation, which would drop e.g. a view suffix).
        """
        if isinstance(prompts, str) or len(prompts) == 0:
            raise ValueError("encode_prompts expects a non-empty sequence of prompt strings")
        missing = list(dict.fromkeys(p for p in prompts if p not in self._prompt_cache))
        if missing:
            for p in missing:
                self.vocabulary_check(p)
            for p, emb in zip(missing, self._run_text_encoder(missing), strict=True):
                self._prompt_cache[p] = emb[None]
        return torch.cat([self._prompt_cache[p] for p in prompts])

    @torch.no_grad()
    def _run_text_encoder(self, prompts: list[str]) -> Float[Tensor, "B S D"]:
        # Pad to the full length and pass no attention mask, as Stable Diffusion was trained.
        for p in prompts:
            n = len(self._tokenizer(p).input_ids)
            if n > self._max_length:
                raise ValueError(
                    f"prompt {p!r} is {n} tokens but the text encoder of {self.name} takes at most "
                    f"{self._max_length}: shorten it"
                )
        tok = self._tokenizer(
            prompts, padding="max_length", max_length=self._max_length, truncation=True, return_tensors="pt"
        )
        out = self._text_encoder(input_ids=tok.input_ids.to(self.device))
        return out.last_hidden_state.to(self.dtype)

    # --- images --------------------------------------------------------------------------------------

    def encode_images(self, rgb: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B C h w"]:
        """rgb in [0, 1] of any size → model space ``z`` (float32), differentiable w.r.t. ``rgb``.

        Resizes to :attr:`resolution` (bilinear, antialiased when shrinking) before encoding.
        """
        if rgb.ndim != 4 or rgb.shape[1] != 3:
            raise ValueError(
                f"encode_images expects rgb of shape (B, 3, H, W) in [0, 1], got {tuple(rgb.shape)}"
            )
        rgb = resize_square(rgb.to(device=self.device, dtype=torch.float32), self.resolution)
        return self._encode(rgb).float()

    @torch.no_grad()
    def decode(self, z: Float[Tensor, "B C h w"]) -> Float[Tensor, "B 3 H W"]:
        """Model space → rgb in [0, 1] (float32, no grad), for previews."""
        self._check_latents(z, "decode")
        return self._decode(z.to(self.device)).float().clamp(0.0, 1.0)

    def _check_latents(self, z: Tensor, what: str) -> None:
        if z.ndim != 4 or z.shape[1] != self.latent_channels:
            raise ValueError(
                f"{what} expects z of shape (B, {self.latent_channels}, h, w) for {self.name}, got {tuple(z.shape)}"
            )

    # --- the frozen denoiser -------------------------------------------------------------------------

    @property
    def unet(self) -> UNet2DConditionModel:
        """The diffusers ``UNet2DConditionModel`` (frozen). ESD attaches a LoRA to it with peft."""
        return self._unet

    def predict_noise(
        self,
        z_t: Float[Tensor, "B C h w"],
        t: Int[Tensor, " B"],
        text_embeddings: Float[Tensor, "B S D"],
        *,
        grad: bool = False,
        **unet_kwargs: Any,
    ) -> Float[Tensor, "B C h w"]:
        """ε-prediction of the UNet at ``(z_t, t)`` given text embeddings; float32 out.

        Inputs are cast to :attr:`dtype` here. For classifier-free guidance pass a batch of 2B
        (``z_t`` repeated, embeddings ``[uncond; cond]``). ``t`` may also be a 0-d tensor or an int.

        Args:
            grad: run with autograd on. Score distillation never backprops through the frozen UNet, so
                the default is no_grad; ESD turns this on to train a LoRA attached to :attr:`unet`.
            unet_kwargs: passed to the UNet as is (e.g. ``class_labels``, ``cross_attention_kwargs``,
                ``added_cond_kwargs``); the caller casts tensors in them.
        """
        self._check_latents(z_t, "predict_noise")
        b = z_t.shape[0]
        t = self._timesteps(t, b)
        if text_embeddings.shape[0] != b:
            raise ValueError(
                f"predict_noise: batch mismatch, z_t has {b} images but text_embeddings has "
                f"{text_embeddings.shape[0]} (for CFG repeat z_t and stack [uncond; cond])"
            )
        z_t = z_t.to(self.device)
        with torch.set_grad_enabled(grad):
            out = self._unet(
                z_t.to(self.dtype),
                t,
                encoder_hidden_states=text_embeddings.to(device=self.device, dtype=self.dtype),
                return_dict=False,
                **unet_kwargs,
            )[0].float()
            return self._to_epsilon(out, z_t.float(), t)

    def _to_epsilon(self, out: Tensor, z_t: Tensor, t: Tensor) -> Tensor:
        if self.prediction_type == "epsilon":
            return out
        a = self.alpha_bar(t)
        if self.prediction_type == "v_prediction":  # v = √ᾱ ε − √(1−ᾱ) x0  ⇒  ε = √ᾱ v + √(1−ᾱ) z_t
            return a.sqrt() * out + (1 - a).sqrt() * z_t
        return (z_t - a.sqrt() * out) / (1 - a).sqrt()  # "sample": out is x0

    # --- the forward process -------------------------------------------------------------------------

    def _timesteps(self, t: Tensor | int, batch: int) -> Int[Tensor, " B"]:
        t = torch.as_tensor(t, device=self.device).long()
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"timesteps must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
        return t

    def alpha_bar(self, t: Int[Tensor, " B"]) -> Float[Tensor, "B 1 1 1"]:
        """ᾱ_t shaped to broadcast against a batch of images (float32)."""
        t = torch.as_tensor(t, device=self.device).long().reshape(-1)
        return self.alphas_cumprod[t].view(-1, 1, 1, 1)

    def add_noise(
        self, z: Float[Tensor, "B C h w"], noise: Float[Tensor, "B C h w"], t: Int[Tensor, " B"]
    ) -> Float[Tensor, "B C h w"]:
        """Forward process: z_t = √ᾱ_t z + √(1−ᾱ_t) ε (differentiable w.r.t. ``z``)."""
        a = self.alpha_bar(self._timesteps(t, z.shape[0])).to(z.dtype)
        return a.sqrt() * z + (1 - a).sqrt() * noise

    def predict_x0(
        self, z_t: Float[Tensor, "B C h w"], t: Int[Tensor, " B"], eps: Float[Tensor, "B C h w"]
    ) -> Float[Tensor, "B C h w"]:
        """Invert the forward process for a given ε: ẑ0 = (z_t − √(1−ᾱ_t) ε) / √ᾱ_t."""
        a = self.alpha_bar(self._timesteps(t, z_t.shape[0])).to(z_t.dtype)
        return (z_t - (1 - a).sqrt() * eps) / a.sqrt()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name}, {self.resolution}px → "
            f"{self.latent_channels}×{self.latent_resolution}², {self.dtype}, {self.device})"
        )


def _token_length(tokenizer: Any, text_encoder: nn.Module) -> int:
    """Tokens per prompt: the tokenizer's ``model_max_length`` unless unset (huge), capped by positions."""
    positions = getattr(text_encoder.config, "max_position_embeddings", None)
    length = getattr(tokenizer, "model_max_length", None)
    if length is None or length > 100_000:  # transformers' "no limit" sentinel is ~1e30
        length = positions
    if length is None:
        raise ValueError(
            "cannot tell the text encoder's token length: set model_max_length in tokenizer_config.json"
        )
    return int(min(length, positions) if positions else length)
