"""What does a ≥ 64 px built-in prior cost on this CPU? Training-step and score-distillation-step times of
the two candidate designs, measured side by side in one run (compare the ratios; the machine is noisy).

    python scripts/probe_prior_cost.py [--batch 64] [--rounds 3] [--json results/prior_cost.json]

Candidates (the shapes are what a ≤ 2 h background training could afford; issue 15):

* ``pixel64``: today's pixel UNet design at 64 × 64 (a fourth level, cross-attention at the coarsest level
  and the mid block, as measured cheapest for the 32 px prior).
* ``latent16``: Stable Diffusion's layout in miniature: an ``AutoencoderKL`` (3 levels: 64 px → 16 × 16 × 4)
  and the same UNet design on its latents. Costs: the VAE's own training step (a separate, earlier stage),
  the UNet's step on latents (the images are encoded once per batch, without gradients), and per score
  distillation step the encoder's forward + backward at 64 px (the renders enter through it).

Each figure is the median over ``--rounds`` of the mean of 3 steps after one warm-up step; one step is a
forward pass, the loss, backward and an AdamW update (for the SDS row: the encoder's forward and a backward
of a surrogate loss to the images, as score distillation does).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _unet(size: int, channels: int, blocks: tuple[int, ...]):
    from diffusers import UNet2DConditionModel

    n = len(blocks)
    return UNet2DConditionModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=blocks,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * (n - 1) + ("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * (n - 1),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )


def _time(step, rounds: int) -> float:
    step()  # warm-up
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(3):
            step()
        per_round.append((time.perf_counter() - t0) / 3)
    return statistics.median(per_round)


def unet_step(unet, x: torch.Tensor, text: torch.Tensor):
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)

    def step() -> None:
        t = torch.randint(0, 1000, (x.shape[0],))
        noise = torch.randn_like(x)
        loss = ((unet(x + noise, t, encoder_hidden_states=text).sample - noise) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def vae_step(vae, x: torch.Tensor):
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-4)

    def step() -> None:
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = ((rec - x) ** 2).mean() + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def encoder_sds_step(vae, b: int):
    vae.requires_grad_(False)

    def step() -> None:
        images = torch.rand(b, 3, 64, 64, requires_grad=True)
        z = vae.encode(2 * images - 1).latent_dist.mean
        (0.5 * (z**2).sum()).backward()

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64, help="training batch (the 32 px prior trains with 64)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    b = args.batch
    text = torch.randn(b, 16, 64)
    pixel32 = _unet(32, 3, (32, 64, 128))
    pixel64 = _unet(64, 3, (32, 64, 128, 128))
    latent16 = _unet(16, 4, (32, 64, 128))
    vae = _vae()
    params = lambda m: sum(q.numel() for q in m.parameters())  # noqa: E731
    rows = {
        "pixel32 UNet step (today's prior, reference)": _time(
            unet_step(pixel32, torch.randn(b, 3, 32, 32), text), args.rounds
        ),
        "pixel64 UNet step": _time(unet_step(pixel64, torch.randn(b, 3, 64, 64), text), args.rounds),
        "latent16 UNet step": _time(unet_step(latent16, torch.randn(b, 4, 16, 16), text), args.rounds),
        "latent16 VAE step (64 px)": _time(vae_step(vae, torch.rand(b, 3, 64, 64) * 2 - 1), args.rounds),
        "latent16 encoder fwd+bwd per SDS step (batch 1, 64 px)": _time(
            encoder_sds_step(vae, 1), args.rounds
        ),
    }
    ref = rows["pixel32 UNet step (today's prior, reference)"]
    print(
        f"batch {b}; seconds per step (median of {args.rounds} rounds) and ratio to today's 32 px UNet step"
    )
    for name, s in rows.items():
        print(f"  {name:58s} {s:8.3f} s   {s / ref:6.2f}×")
    sizes = {
        "pixel32": params(pixel32),
        "pixel64": params(pixel64),
        "latent16": params(latent16),
        "vae": params(vae),
    }
    print("parameters: " + ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in sizes.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "batch": b,
            "rounds": args.rounds,
            "seconds": rows,
            "parameters": sizes,
            "command": " ".join(sys.argv),
        }
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
