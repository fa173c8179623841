"""``python -m engine.world --out grid.png [--n 64] [--seed 0] [--size 64]``: a captioned sample grid.

``--bench`` also times batch rendering (64 mixed objects; the numbers quoted in ``render.py``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from engine.world.data import WorldBatch, WorldConfig


def grid_image(batch: WorldBatch, tile: int = 128, cols: int | None = None) -> Image.Image:
    """Tiles of the batch's images, each upscaled to ``tile`` px with its caption and labels underneath."""
    n = len(batch.captions)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    text_h = 26
    canvas = Image.new("RGB", (cols * tile, rows * (tile + text_h)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    pixels = (batch.images.clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i in range(n):
        x, y = (i % cols) * tile, (i // cols) * (tile + text_h)
        canvas.paste(Image.fromarray(pixels[i]).resize((tile, tile), Image.LANCZOS), (x, y))
        caption = batch.captions[i].removeprefix("a ").removeprefix("an ")
        labels = f"az {float(batch.azimuth[i]):+.0f} el {float(batch.elevation[i]):.0f}"
        if bool(batch.has_front[i]):
            labels += " F" if bool(batch.front_visible[i]) else " b"
        draw.text((x + 2, y + tile + 1), caption[:26], fill="black", font=font)
        draw.text((x + 2, y + tile + 13), labels, fill=(90, 90, 90), font=font)
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.world", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--n", type=int, default=64, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--bench", action="store_true", help="time rendering batches of 64")
    args = parser.parse_args(argv)

    sampler = WorldConfig(size=args.size, seed=args.seed).setup()
    batch = sampler.sample_batch(args.n, torch.Generator().manual_seed(args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid_image(batch).save(args.out)
    print(f"wrote {args.out} ({args.n} samples, {args.size}px)")
    if args.bench:
        gen = torch.Generator().manual_seed(args.seed)
        sampler.sample_batch(64, gen)  # warm-up
        times = []
        for _ in range(10):
            start = time.perf_counter()
            sampler.sample_batch(64, gen)
            times.append(time.perf_counter() - start)
        times.sort()
        print(
            f"64 samples at {args.size}px (supersample {sampler.cfg.supersample}): "
            f"median {times[5]:.3f} s, best {times[0]:.3f} s over 10 batches ({torch.get_num_threads()} threads)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
