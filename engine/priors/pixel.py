"""Pixel-space diffusion prior: a diffusers UNet that denoises rgb directly (the built-in prior's kind).

Model space is ``2 * rgb - 1`` at the UNet's ``sample_size``; there is no VAE. Such models are small
enough to run score distillation on a CPU, but they usually know only the words they were trained on,
so :meth:`PixelDiffusionPrior.vocabulary_check` turns unknown words into a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from engine.device import prior_dtype, resolve_device
from engine.priors.base import DiffusionPrior, first_line, square_size
from engine.priors.identity import PriorIdentity, identify_folder

if TYPE_CHECKING:
    from diffusers import DDPMScheduler, UNet2DConditionModel

PIXEL_SUBFOLDERS = ("unet", "text_encoder", "tokenizer", "scheduler")


@dataclass
class PixelPriorConfig:
    """A text-to-image diffusion model in pixel space, stored as a diffusers folder."""

    path: str
    """Folder in diffusers layout: unet/, text_encoder/, tokenizer/, scheduler/ (model_index.json optional)."""

    def identity(self) -> PriorIdentity:
        """Which weights this is (folder and fingerprint), without loading them."""
        return identify_folder(self.path)

    def setup(self, device: torch.device | str) -> PixelDiffusionPrior:
        """Load the prior onto ``device`` (weights in ``engine.device.prior_dtype(device)``)."""
        device = resolve_device(device) if isinstance(device, str) else device
        return PixelDiffusionPrior.from_folder(self.path, device)


class PixelDiffusionPrior(DiffusionPrior):
    """A frozen pixel-space UNet with its text encoder; ``z = 2 * rgb - 1``."""

    def __init__(
        self,
        *,
        name: str,
        device: torch.device,
        unet: UNet2DConditionModel,
        text_encoder: nn.Module,
        tokenizer: Any,
        scheduler: DDPMScheduler,
        dtype: torch.dtype | None = None,
    ) -> None:
        device = torch.device(device)
        cin, cout = unet.config.in_channels, unet.config.out_channels
        if cin != 3 or cout != 3:
            raise ValueError(
                f"{name}: a pixel prior's UNet must map 3 → 3 channels (rgb), this one maps {cin} → {cout}"
            )
        super().__init__(
            name=name,
            device=device,
            dtype=dtype or prior_dtype(device),
            unet=unet,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
        )
        self.resolution = square_size(unet.config.sample_size, name)
        self.latent_channels = cin
        self.latent_resolution = self.resolution
        self.x0_clip = 1.0  # z = 2·rgb − 1 lies in [−1, 1]

    @classmethod
    def from_folder(cls, path: str | Path, device: torch.device) -> PixelDiffusionPrior:
        """Load from a diffusers-layout folder; ``ValueError`` / ``RuntimeError`` with one-line reasons."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ValueError(f"pixel prior folder {str(folder)!r} does not exist")
        missing = [f"{s}/" for s in PIXEL_SUBFOLDERS if not (folder / s).is_dir()]
        if missing:
            raise ValueError(f"{str(folder)!r} is not a diffusers pixel prior: it lacks {', '.join(missing)}")

        from diffusers import DDPMScheduler, UNet2DConditionModel
        from transformers import AutoModel, AutoTokenizer

        try:
            unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
            text_encoder = AutoModel.from_pretrained(folder / "text_encoder")
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
            scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
        except (
            Exception
        ) as e:  # diffusers/transformers raise OSError, ValueError, KeyError... for bad folders
            raise RuntimeError(f"could not load pixel prior from {str(folder)!r}: {first_line(e)}") from e
        prior = cls(
            name=f"pixel:{folder}",
            device=device,
            unet=unet,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            scheduler=scheduler,
        )
        prior.folder = Path(folder)
        return prior

    def _encode(self, rgb: Float[Tensor, "B 3 R R"]) -> Float[Tensor, "B 3 R R"]:
        return 2.0 * rgb - 1.0

    def _decode(self, z: Float[Tensor, "B 3 R R"]) -> Float[Tensor, "B 3 R R"]:
        return (z.float() + 1.0) / 2.0
