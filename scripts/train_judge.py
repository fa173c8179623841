"""Train the judge (object class, colour, front visible) on procedural-world renders.

    python scripts/train_judge.py                 # writes engine/judge/judge.safetensors + judge.json + MODEL_CARD.md

Augmentation makes NeRF renders in-distribution: random blur (renders are soft), a random downsample to
32 px and back (the engine's previews and low-res renders), pixel noise, and a small brightness jitter
(small, so colour names stay right). Front-visible is trained only on objects that have a front.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import engine  # noqa: E402,F401
from engine.cli import OneLineParser, add_config_flags, overrides_from  # noqa: E402
from engine.configbase import to_dict  # noqa: E402
from engine.judge import INPUT_SIZE, JUDGE_DIR, Judge  # noqa: E402


@dataclass
class JudgeTrainConfig:
    """Training of the judge."""

    seed: int = 0
    """Seeds data, initialisation and augmentation."""
    steps: int = 1200
    """Optimisation steps."""
    pool_size: int = 8192
    """Training images rendered once up front (steps draw augmented batches from them)."""
    batch_size: int = 96
    """Images per step."""
    lr: float = 2e-3
    """AdamW learning rate (cosine decay)."""
    width: int = 32
    """Channels of the first conv block (doubles twice)."""
    eval_images: int = 1024
    """Held-out images (another seed) for the accuracy table."""
    out: str = str(JUDGE_DIR)
    """Folder for judge.safetensors, judge.json and MODEL_CARD.md."""


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    # Blur: mix with a 3×3 box-blurred copy by a random amount.
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    k = torch.rand(b, 1, 1, 1, generator=gen)
    x = x * (1 - k) + blurred * k
    # Half of the batch through a 32 px bottleneck.
    low = torch.rand(b, generator=gen) < 0.5
    if low.any():
        small = F.interpolate(x[low], size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
        x[low] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    x = x * (1 + 0.1 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5))
    x = x + 0.02 * torch.randn(x.shape, generator=gen)
    return x.clamp(0, 1)


def main(argv: list[str] | None = None) -> int:
    from engine.world.data import COLOUR_LABELS, WorldConfig, WorldSampler
    from engine.world.scene import CLASS_NAMES

    parser = OneLineParser(prog="python scripts/train_judge.py", description=__doc__.split("\n\n")[0])
    paths = add_config_flags(parser, JudgeTrainConfig, skip=set())
    args = parser.parse_args(argv)
    cfg = JudgeTrainConfig()
    for p, v in overrides_from(args, paths).items():
        setattr(cfg, p, v)
    torch.manual_seed(cfg.seed)
    world = WorldSampler(WorldConfig(size=INPUT_SIZE))
    judge = Judge(list(CLASS_NAMES), list(COLOUR_LABELS), cfg.width)
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    parts = [world.sample_batch(256, gen) for _ in range(cfg.pool_size // 256)]
    pool = {
        k: torch.cat([getattr(b, k) for b in parts])
        for k in ("images", "class_idx", "colour_idx", "has_front", "front_visible")
    }
    print(f"rendered {len(pool['images'])} images in {time.perf_counter() - t0:.0f}s", flush=True)
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(len(pool["images"]), (cfg.batch_size,), generator=gen)
        b = {k: v[idx] for k, v in pool.items()}
        cl, co, fr = judge(augment(b["images"], gen))
        loss = F.cross_entropy(cl, b["class_idx"]) + F.cross_entropy(co, b["colour_idx"])
        hf = b["has_front"]
        if hf.any():
            loss = loss + F.binary_cross_entropy_with_logits(fr[hf], b["front_visible"][hf].float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"step {step:5d} loss {float(loss):.4f} {time.perf_counter() - t0:.0f}s", flush=True)
    minutes = (time.perf_counter() - t0) / 60

    # Held-out accuracy (another seed, no augmentation, and with augmentation).
    judge.eval()
    table = {}
    with torch.no_grad():
        egen = torch.Generator().manual_seed(cfg.seed + 12345)
        ev = world.sample_batch(cfg.eval_images, egen)
        for name, imgs in (("clean", ev.images), ("augmented", augment(ev.images.clone(), egen))):
            cl, co, fr = judge(imgs)
            hf = ev.has_front
            table[name] = {
                "class": float((cl.argmax(-1) == ev.class_idx).float().mean()),
                "colour": float((co.argmax(-1) == ev.colour_idx).float().mean()),
                "front_visible": float(((fr[hf] > 0) == ev.front_visible[hf]).float().mean()),
            }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in judge.state_dict().items()}, str(out / "judge.safetensors"))
    command = "python scripts/train_judge.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    meta = {
        "classes": judge.classes,
        "colours": judge.colours,
        "width": cfg.width,
        "command": command.strip(),
        "config": to_dict(cfg) | {"out": "engine/judge"},
        "minutes": round(minutes, 1),
        "final_loss": float(loss),
        "heldout_accuracy": table,
        "params": sum(p.numel() for p in judge.parameters()),
    }
    (out / "judge.json").write_text(json.dumps(meta, indent=2))
    rows = "\n".join(
        f"| {k} | {v['class']:.3f} | {v['colour']:.3f} | {v['front_visible']:.3f} |" for k, v in table.items()
    )
    (out / "MODEL_CARD.md").write_text(
        f"""# Judge: class / colour / front-visible classifier of the procedural world

- Command: `{meta["command"]}`
- Seed {cfg.seed}, {cfg.steps} steps of batch {cfg.batch_size}, {minutes:.1f} min on a 2-core CPU; final loss {float(loss):.4f}
- {meta["params"]:,} parameters; input RGB resized to {INPUT_SIZE}×{INPUT_SIZE}
- Classes: {", ".join(judge.classes)}; colours: {", ".join(judge.colours)}

Held-out accuracy on {cfg.eval_images} world renders (seed {cfg.seed + 12345}):

| images | class | colour | front visible (objects with a front) |
|---|---|---|---|
{rows}
"""
    )
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
