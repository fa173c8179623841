"""How hard does each shipped prior pull on a render? Mean |∂L_SDS/∂pixel| of SDS at the training render size.

    python scripts/measure_guidance_gradient.py [--images 8] [--draws 8] [--json results/guidance_gradient.json]

The geometry regularisers (``engine/regularizers.py``) were weighted by measurement against the 32 px pixel
prior's guidance. A latent prior's gradient reaches the render through its VAE encoder, a pixel prior's
through a 2× downsampling, so the same render gets a gradient of a different size, and the same regulariser
weights mean a different balance. This script measures that size on world images (the field's target, so
the renders SDS sees late in a run) and on uniform noise (the first steps), with each prior's own ω, and
prints each prior's ratio to ``builtin-pixel32``: the factor by which ``engine.config.PRIOR_TUNING`` scales
the regularisers of a prior to keep the balance that was measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401

REFERENCE = "builtin-pixel32"
"""The prior the regulariser weights were measured with."""


def mean_pixel_gradient(prior_name: str, images: torch.Tensor, draws: int) -> float:
    """E |∂L_SDS/∂pixel| over ``draws`` (t, ε) draws per image, with the prior's tuned ω for "a red cube"."""
    from engine.config import build_config
    from engine.guidance import PromptEmbeddings
    from engine.priors import load_prior, resolve_prior_spec

    cfg = build_config("a red cube", "sds", prior_name)
    prior = load_prior(resolve_prior_spec(prior_name), "cpu")
    b = images.shape[0]
    text = PromptEmbeddings(
        cond=prior.encode_prompts(["a red cube"] * b), uncond=prior.encode_prompts([""] * b)
    )
    guidance = cfg.guidance.setup(prior)
    x = images.clone().requires_grad_(True)  # already at the render size
    for k in range(draws):
        guidance(x, text, k, cfg.train.steps, torch.Generator().manual_seed(k)).loss.backward()
    return float(x.grad.abs().mean() / draws)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/measure_guidance_gradient.py", description=__doc__)
    parser.add_argument("--images", type=int, default=8, help="world images (and noise images)")
    parser.add_argument("--draws", type=int, default=8, help="(t, ε) draws per image")
    parser.add_argument("--size", type=int, default=64, help="render size (the fast preset's 64)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    from engine.priors import SHIPPED_PRIORS
    from engine.world.data import WorldConfig, WorldSampler

    world = WorldSampler(WorldConfig(size=args.size, seed=3)).sample_batch(
        args.images, torch.Generator().manual_seed(3)
    )
    noise = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(4))
    rows = {}
    for name in SHIPPED_PRIORS:
        rows[name] = {
            src: mean_pixel_gradient(name, imgs, args.draws)
            for src, imgs in (("world", world.images), ("noise", noise))
        }
    ref = rows[REFERENCE]
    for name, r in rows.items():
        r["ratio_world"], r["ratio_noise"] = r["world"] / ref["world"], r["noise"] / ref["noise"]
        print(
            f"{name:<16} mean |grad| per pixel: world {r['world']:.5f}, noise {r['noise']:.5f}; "
            f"× {r['ratio_world']:.1f} / × {r['ratio_noise']:.1f} of {REFERENCE}"
        )
    if args.json:
        out = {"command": "python scripts/measure_guidance_gradient.py " + " ".join(argv or sys.argv[1:])}
        out |= {"size": args.size, "images": args.images, "draws": args.draws, "priors": rows}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
