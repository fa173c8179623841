"""Training data of the corrective: batches of z in prior space and the triplets (z, ẑ_t, t/T) of eq. 10."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from scripts.corrective.config import CorrectiveTrainConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class ImageSource:
    """Batches of z in prior space: world images rendered on the fly, or a VAE-encoded image folder."""

    def __init__(self, cfg: CorrectiveTrainConfig, prior, device: torch.device):
        self.prior, self.device = prior, device
        self.pool: torch.Tensor | None = None
        if cfg.images is not None:
            self.pool = encode_folder(Path(cfg.images).expanduser(), prior)
            print(f"encoded {self.pool.shape[0]} images (with mirror images) from {cfg.images}", flush=True)
        elif prior.latent_channels != 3 and not trained_on_world(prior):
            raise SystemExit(
                f"error: the prior {prior.name} is a latent prior not trained on the procedural world; world "
                "images do not represent its image distribution: pass --images DIR (a folder of photos)"
            )
        else:
            from engine.world.data import WorldConfig, WorldSampler

            self.world = WorldSampler(WorldConfig(size=prior.resolution))

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.pool is not None:
            idx = torch.randint(self.pool.shape[0], (n,), generator=gen)
            return self.pool[idx].to(self.device)
        return self.prior.encode_images(self.world.sample_batch(n, gen).images.to(self.device))


@torch.no_grad()
def trained_on_world(prior) -> bool:
    """Whether the prior's own training record (``training.json`` in its folder, written by this repo's
    training scripts) says it learned the procedural world's images."""
    import json

    folder = getattr(prior, "folder", None)
    record = Path(folder) / "training.json" if folder is not None else None
    if record is None or not record.is_file():
        return False
    return json.loads(record.read_text()).get("data") == WORLD_DATA


WORLD_DATA = "engine.world"
"""What a training record names as its data when the images came from :mod:`engine.world`."""


def encode_folder(folder: Path, prior, chunk: int = 16) -> torch.Tensor:
    """Every image of ``folder`` and its mirror image, centre-cropped, resized and encoded (CPU float32)."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = []
    for i in range(0, len(files), chunk):
        rgbs = []
        for f in files[i : i + chunk]:
            im = Image.open(f).convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((prior.resolution,) * 2, Image.LANCZOS)
            rgbs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0)
        rgb = torch.stack(rgbs)
        out.append(prior.encode_images(torch.cat([rgb, rgb.flip(-1)])).cpu())
    return torch.cat(out)


def triplets(prior, source: ImageSource, n: int, cfg: CorrectiveTrainConfig, x0_clip, gen, uncond):
    """(z, ẑ_t, t/T): z from the source, integer t with t/T ~ U(t_min, t_max), ẑ_t the unconditional
    one-step denoised estimate of z_t = √ᾱ_t z + √(1−ᾱ_t) ε (clamped as the guidance will)."""
    from engine.guidance.corrective import denoised_estimate

    T = prior.num_train_timesteps
    z = source.sample(n, gen)
    t = torch.randint(int(cfg.t_min * T), int(cfg.t_max * T), (n,), generator=gen).to(z.device)
    eps = torch.randn(z.shape, generator=gen).to(z.device)
    with torch.no_grad():
        z_t = prior.add_noise(z, eps, t)
        e = prior.predict_noise(z_t, t, uncond.expand(n, -1, -1))
        z_hat = denoised_estimate(prior, z_t, t, e, x0_clip)
    return z, z_hat, t.float() / T


def resolve_x0_clip(value: str, prior) -> float | None:
    v = value.strip().lower()
    if v == "auto":
        return prior.x0_clip  # the prior's own data range: 1.0 for pixel priors, none for latents
    if v == "none":
        return None
    try:
        return float(v)
    except ValueError:
        raise SystemExit(f"error: --x0-clip takes auto, none or a number, not {value!r}") from None
