"""Stable Diffusion (latent) prior: UNet + VAE + CLIP text encoder, loaded component by component.

Model space is the VAE latent ``z = vae.encode(2 * rgb - 1).latent_dist.mean * scaling_factor`` at
``resolution / 2**(len(vae blocks) - 1)`` (64×64 for SD 2.1-base at 512 px). No pipeline object is built:
score distillation needs only the components.
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
from engine.priors.identity import PriorIdentity, identify_source

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

DEFAULT_SD_MODEL = "stabilityai/stable-diffusion-2-1-base"
SD_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


@dataclass
class StableDiffusionConfig:
    """A Stable Diffusion model (latent space, open vocabulary) from the model hub or a local folder."""

    model: str = DEFAULT_SD_MODEL
    """Hub id or local diffusers folder with unet/, vae/, text_encoder/, tokenizer/, scheduler/."""
    revision: str | None = None
    """Hub revision (branch, tag or commit hash); ignored for local folders."""

    def identity(self) -> PriorIdentity:
        """Which weights this is (a local folder and its fingerprint, or the hub id), without loading them."""
        return identify_source(self.model)

    def setup(self, device: torch.device | str) -> StableDiffusionPrior:
        """Load the prior onto ``device`` (weights in ``engine.device.prior_dtype(device)``)."""
        device = resolve_device(device) if isinstance(device, str) else device
        return StableDiffusionPrior.from_pretrained(self.model, device, revision=self.revision)


class StableDiffusionPrior(DiffusionPrior):
    """A frozen latent-diffusion UNet with its VAE and CLIP text encoder.

    The VAE runs in the weights dtype (fp16 on CUDA), as threestudio does for SD 2.x: its VAE is stable
    in fp16 (the overflow problem is SDXL's VAE), and backprop through the encoder at 512² is the
    memory peak of a step, which fp32 would double.
    """

    def __init__(
        self,
        *,
        name: str,
        device: torch.device,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: nn.Module,
        tokenizer: Any,
        scheduler: DDPMScheduler,
        dtype: torch.dtype | None = None,
    ) -> None:
        device = torch.device(device)
        latent = vae.config.latent_channels
        cin, cout = unet.config.in_channels, unet.config.out_channels
        if cin != latent or cout != latent:
            raise ValueError(
                f"{name}: the UNet maps {cin} → {cout} channels but the VAE latent has {latent} "
                "(inpainting / depth variants are not text-to-image priors)"
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
        self._vae = self._freeze(vae)
        self._scaling_factor = float(vae.config.scaling_factor)
        self._shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.latent_channels = latent
        self.latent_resolution = square_size(unet.config.sample_size, name)
        self.resolution = self.latent_resolution * 2 ** (len(vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(
        cls, model: str, device: torch.device, revision: str | None = None
    ) -> StableDiffusionPrior:
        """Load from a local diffusers folder or a hub id (hub cache first, then the network).

        Raises ``ValueError`` for a local folder missing components and ``RuntimeError`` with a one-line
        reason when loading fails.
        """
        folder = Path(model).expanduser()
        if folder.is_dir():
            missing = [f"{s}/" for s in SD_SUBFOLDERS if not (folder / s).is_dir()]
            if missing:
                raise ValueError(
                    f"{str(folder)!r} is not a Stable Diffusion folder: it lacks {', '.join(missing)}"
                )
            try:
                parts = _load_components(str(folder), revision=None, local_files_only=True)
            except Exception as e:  # diffusers/transformers raise OSError, ValueError, ... for bad files
                raise RuntimeError(
                    f"could not load Stable Diffusion from {str(folder)!r}: {first_line(e)}"
                ) from e
            name = f"sd:{folder}"
        else:
            try:  # the hub cache first: no network round-trips when the model is already downloaded
                parts = _load_components(model, revision=revision, local_files_only=True)
            except Exception:
                try:
                    parts = _load_components(model, revision=revision, local_files_only=False)
                except Exception as e:
                    raise RuntimeError(
                        f"could not load Stable Diffusion {model!r}: not found locally and the model hub is "
                        f"unreachable or has no such model; pass a local diffusers folder ({first_line(e)})"
                    ) from e
            name = f"sd:{model}" + (f"@{revision}" if revision else "")
        prior = cls(name=name, device=device, **parts)
        prior.folder = folder if folder.is_dir() else None
        return prior

    def _encode(self, rgb: Float[Tensor, "B 3 R R"]) -> Float[Tensor, "B 4 r r"]:
        # The posterior mean, not a sample: the encoding is deterministic, so the only noise in a
        # score-distillation step is the ε the guidance draws itself.
        x = (2.0 * rgb - 1.0).to(self.dtype)
        z = self._vae.encode(x).latent_dist.mean
        return (z.float() - self._shift_factor) * self._scaling_factor

    def _decode(self, z: Float[Tensor, "B 4 r r"]) -> Float[Tensor, "B 3 R R"]:
        z = z.float() / self._scaling_factor + self._shift_factor
        x = self._vae.decode(z.to(self.dtype)).sample
        return (x.float() + 1.0) / 2.0


def _load_components(model: str, revision: str | None, local_files_only: bool) -> dict[str, Any]:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    kw: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
    return {
        "unet": UNet2DConditionModel.from_pretrained(model, subfolder="unet", **kw),
        "vae": AutoencoderKL.from_pretrained(model, subfolder="vae", **kw),
        "text_encoder": CLIPTextModel.from_pretrained(model, subfolder="text_encoder", **kw),
        "tokenizer": AutoTokenizer.from_pretrained(model, subfolder="tokenizer", **kw),
        # SD ships a PNDM config; DDPM reads the same betas, and only the noise schedule is used here.
        "scheduler": DDPMScheduler.from_pretrained(model, subfolder="scheduler", **kw),
    }
