"""Draw images from a prior: DDIM sampling with classifier-free guidance, and a grid writer.

    python -m engine.priors.sample "a red cube" --out grid.png [--prior builtin] [--n 8] [--steps 50] [--cfg 5]

Used to look at what a prior has learned (the built-in prior's model card grid comes from here) and by the
evaluation of the built-in prior. DDIM (Song et al. 2021, eq. 12 with η = 0) with the predicted x₀ clipped
to the data range [-1, 1] for pixel priors, as diffusers' ``clip_sample`` does, starting at the noisiest
timestep whose signal-to-noise ratio is at least :data:`MIN_START_SNR`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from engine.priors.base import DiffusionPrior

MIN_START_SNR = 1e-3
"""Lowest SNR ᾱ_t / (1 − ᾱ_t) the sampler starts at. Each DDIM step forms x₀ = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t,
so the first step multiplies the ε error by 1/√SNR. The cosine schedule's last step has ᾱ_999 = 2.4·10⁻⁹
(1/√SNR = 2·10⁴): a pixel prior survives it only because x₀ is clamped to [−1, 1], and the unclamped 64 px
latent prior came out mottled and oversaturated, judged the right class in 30 % of samples instead of
100 % (results/latent_prior_64/STATUS.md). SNR ≥ 10⁻³ starts the cosine schedule at t = 978 (1/√SNR ≈ 32),
the top of score distillation's t range, where x_T ~ N(0, I) is still the marginal up to a 3 % signal;
Stable Diffusion's scaled-linear schedule (ᾱ_999 = 4.7·10⁻³) keeps its full range."""


def start_timestep(alphas_cumprod: Float[Tensor, " T"]) -> int:
    """The highest t with ᾱ_t / (1 − ᾱ_t) ≥ :data:`MIN_START_SNR` (ᾱ decreases with t)."""
    snr = alphas_cumprod / (1 - alphas_cumprod)
    ok = torch.nonzero(snr >= MIN_START_SNR).flatten()
    if len(ok) == 0:
        raise ValueError(f"no timestep of this schedule has SNR >= {MIN_START_SNR}")
    return int(ok.max())


@torch.no_grad()
def sample_images(
    prior: DiffusionPrior,
    prompts: Sequence[str],
    steps: int = 50,
    guidance_scale: float = 5.0,
    generator: torch.Generator | None = None,
    clip: bool = True,
) -> Float[Tensor, "B 3 R R"]:
    """One image per prompt, RGB in [0, 1], at the prior's native resolution (pixel priors: model space).

    ``clip`` clamps each x₀ estimate to the prior's data range ±``prior.x0_clip`` where it has one (pixel
    priors; latents are unbounded and never clamped)."""
    bound = prior.x0_clip if clip else None
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps})")
    n = len(prompts)
    cond = prior.encode_prompts(list(prompts))
    uncond = prior.encode_prompts([""] * n)
    emb = torch.cat([uncond, cond])
    ab = prior.alphas_cumprod
    # Evenly spaced timesteps from the start (see MIN_START_SNR) down to 0.
    ts = torch.linspace(start_timestep(ab), 0, steps).round().long().tolist()
    shape = (n, prior.latent_channels, prior.latent_resolution, prior.latent_resolution)
    x = torch.randn(shape, generator=generator).to(prior.device)
    for i, t in enumerate(ts):
        tt = torch.full((n,), t, device=prior.device, dtype=torch.long)
        eps_u, eps_c = prior.predict_noise(torch.cat([x, x]), torch.cat([tt, tt]), emb).chunk(2)
        eps = eps_u + guidance_scale * (eps_c - eps_u)
        x0 = prior.predict_x0(x, tt, eps)
        if bound is not None:
            x0 = x0.clamp(-bound, bound)
            eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        ab_prev = ab[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=prior.device)
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return prior.decode(x).clamp(0, 1)


def image_grid(images: Float[Tensor, "B 3 H W"], ncols: int | None = None, scale: int = 1) -> np.ndarray:
    """Tile images into one uint8 [H', W', 3] array (nearest-neighbour upscaled by ``scale``)."""
    b, _, h, w = images.shape
    ncols = ncols or math.ceil(math.sqrt(b))
    nrows = math.ceil(b / ncols)
    grid = torch.ones(3, nrows * (h + 2), ncols * (w + 2))
    for i in range(b):
        r, c = divmod(i, ncols)
        grid[:, r * (h + 2) + 1 : r * (h + 2) + 1 + h, c * (w + 2) + 1 : c * (w + 2) + 1 + w] = images[
            i
        ].cpu()
    arr = (grid.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    return arr.repeat(scale, 0).repeat(scale, 1) if scale > 1 else arr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.priors.sample", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("prompt", nargs="+", help="one or more prompts; each gets --n samples")
    parser.add_argument("--out", required=True, help="PNG file for the grid")
    parser.add_argument("--prior", default="builtin", help="as in engine.generate (default builtin)")
    parser.add_argument("--n", type=int, default=8, help="samples per prompt")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--cfg", type=float, default=5.0, help="classifier-free guidance scale")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=4, help="pixel upscaling of the grid")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        from PIL import Image

        from engine.device import resolve_device
        from engine.priors import load_prior, resolve_prior_spec

        prior = load_prior(resolve_prior_spec(args.prior), resolve_device(args.device))
        prompts = [p for p in args.prompt for _ in range(args.n)]
        imgs = sample_images(prior, prompts, args.steps, args.cfg, torch.Generator().manual_seed(args.seed))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image_grid(imgs, ncols=args.n, scale=args.scale)).save(args.out)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
