"""Tiny random diffusion priors saved in diffusers layout, for fast offline tests.

Built from configs the way diffusers' own tests build ``get_dummy_components``: a UNet with
``block_out_channels=(8, 16)``, a 2-layer CLIP text encoder of width 16, a ``DDPMScheduler`` with the
real SD beta schedule. Seeded, so two builds give identical weights; each build takes well under a
second. Nothing here touches the model hub.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, PreTrainedTokenizerFast

from engine.priors.words import word_level_tokenizer

TINY_VOCAB: tuple[str, ...] = (
    "a",
    "red",
    "green",
    "blue",
    "cube",
    "sphere",
    "cone",
    "snowman",
    "house",
    "front",
    "side",
    "back",
    "overhead",
    "view",
    ",",
)
"""Words the tiny pixel prior knows (prompts are lower-cased; commas split off as their own token)."""

PIXEL_MAX_LENGTH = 16
"""Tokens per prompt of the tiny pixel prior (word-level, so ~14 words)."""
SD_MAX_LENGTH = 77
"""Tokens per prompt of the tiny SD prior, as in CLIP (its tokenizer is character-level: ~75 characters)."""
HIDDEN = 16
"""Text-embedding width == UNet cross-attention width."""


def _scheduler() -> DDPMScheduler:
    # Stable Diffusion's schedule, so alphas_cumprod has realistic values.
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )


def _unet(channels: int, sample_size: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN,
        attention_head_dim=4,
        norm_num_groups=4,
    )


def _text_encoder(tokenizer: PreTrainedTokenizerFast) -> CLIPTextModel:
    cfg = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CLIPTextModel(cfg)


def _bytes_to_unicode() -> list[str]:
    """GPT-2 / CLIP byte-level alphabet: one printable character per byte value."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def char_level_clip_tokenizer() -> CLIPTokenizer:
    """A CLIP BPE tokenizer with no merges: open vocabulary at character granularity, ~500 tokens."""
    alphabet = _bytes_to_unicode()
    tokens = ["<|startoftext|>", "<|endoftext|>", *alphabet, *(c + "</w>" for c in alphabet)]
    return CLIPTokenizer(
        vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=SD_MAX_LENGTH
    )


def build_tiny_pixel_prior(
    folder: str | Path, sample_size: int = 16, vocab: Sequence[str] = TINY_VOCAB, seed: int = 0
) -> Path:
    """Write a random pixel-space prior (unet/, text_encoder/, tokenizer/, scheduler/) into ``folder``."""
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = word_level_tokenizer(vocab)
    text_encoder = _text_encoder(tokenizer)
    _unet(3, sample_size).save_pretrained(folder / "unet")
    text_encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    _scheduler().save_pretrained(folder / "scheduler")
    return folder


def build_tiny_sd_prior(folder: str | Path, latent_size: int = 8, seed: int = 0) -> Path:
    """Write a random latent prior in Stable Diffusion layout (adds vae/) into ``folder``.

    The VAE has four blocks like SD's, so it downsamples by 8: native resolution is ``8 * latent_size``.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = char_level_clip_tokenizer()
    text_encoder = _text_encoder(tokenizer)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=8 * latent_size,
    )
    _unet(vae.config.latent_channels, latent_size).save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    tokenizer.save_pretrained(folder / "tokenizer")
    _scheduler().save_pretrained(folder / "scheduler")
    return folder
