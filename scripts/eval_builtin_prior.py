"""Check the built-in prior with the judge: its samples, and assets generated from it.

    python scripts/eval_builtin_prior.py samples  [--n 4] [--json out.json]   # every caption, n samples each
    python scripts/eval_builtin_prior.py generate "a red cube" "a blue sphere" ... [--steps N]

``samples``: DDIM + CFG samples of every caption of the world (no view suffix); the judge's class and
colour verdicts against the caption. ``generate``: a full ``engine.generate`` run per prompt with the
default preset (built-in prior), then the NeRF rendered from 8 azimuths (elevation 15°) and judged; a
view counts when both class and colour match the prompt. Prints a markdown table; ``--json`` saves it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401


def all_captions() -> list[tuple[str, str, str]]:
    """(caption, class, colour) for every object of the world."""
    from engine.world.data import caption_of
    from engine.world.scene import CLASS_NAMES, COLOUR_NAMES, ObjectSpec

    out = []
    for shape in CLASS_NAMES:
        for colour in ["white"] if shape == "snowman" else COLOUR_NAMES:
            out.append((caption_of(ObjectSpec(shape, colour)), shape, colour))
    return out


def parse_prompt(prompt: str) -> tuple[str, str]:
    """(class, colour) named by a world prompt such as "a red cube" or "a snowman"."""
    from engine.world.scene import CLASS_NAMES, COLOUR_NAMES

    words = prompt.lower().replace(",", " ").split()
    cls = next((w for w in words if w in CLASS_NAMES), None)
    colour = "white" if cls == "snowman" else next((w for w in words if w in COLOUR_NAMES), None)
    if cls is None or colour is None:
        raise ValueError(f"cannot read a class and a colour from {prompt!r}")
    return cls, colour


def eval_samples(args) -> dict:
    from engine.judge import judge_images, load_judge
    from engine.priors import load_prior, resolve_prior_spec
    from engine.priors.sample import sample_images

    prior = load_prior(resolve_prior_spec(args.prior), torch.device("cpu"))
    judge = load_judge()
    caps = all_captions()
    prompts = [c for c, _, _ in caps for _ in range(args.n)]
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(args.seed)
    imgs = torch.cat(
        [
            sample_images(prior, prompts[i : i + 128], args.steps, args.cfg, gen)
            for i in range(0, len(prompts), 128)
        ]
    )
    verdicts = judge_images(judge, imgs)
    rows, cls_ok, col_ok = [], 0, 0
    for k, (cap, cls, colour) in enumerate(caps):
        v = verdicts[k * args.n : (k + 1) * args.n]
        c = sum(x.cls == cls for x in v)
        o = sum(x.colour == colour for x in v)
        cls_ok, col_ok = cls_ok + c, col_ok + o
        rows.append({"caption": cap, "class_ok": c, "colour_ok": o, "n": args.n})
    total = len(caps) * args.n
    res = {
        "prior": prior.name,
        "n_per_caption": args.n,
        "ddim_steps": args.steps,
        "cfg": args.cfg,
        "seed": args.seed,
        "class_agreement": cls_ok / total,
        "colour_agreement": col_ok / total,
        "captions": rows,
        "seconds": time.perf_counter() - t0,
    }
    if args.grid:
        from PIL import Image

        from engine.priors.sample import image_grid

        Image.fromarray(image_grid(imgs, ncols=args.n * 4, scale=3)).save(args.grid)
    print(
        f"judge agreement over {total} samples: class {res['class_agreement']:.1%}, colour {res['colour_agreement']:.1%}"
    )
    bad = [r for r in rows if r["class_ok"] < args.n or r["colour_ok"] < args.n]
    for r in bad:
        print(f"  {r['caption']:<22} class {r['class_ok']}/{r['n']}  colour {r['colour_ok']}/{r['n']}")
    return res


def eval_generate(args) -> dict:
    from engine.cameras import turntable
    from engine.config import build_config
    from engine.judge import judge_images, load_judge
    from engine.priors import load_prior, resolve_prior_spec
    from engine.train import Trainer

    judge = load_judge()
    prior = None
    results = []
    for prompt in args.prompts:
        cls, colour = parse_prompt(prompt)
        overrides = {"train.seed": args.seed, "train.checkpoint_every": 0, "train.preview_every": 0}
        if args.steps:
            overrides["train.steps"] = args.steps
        cfg = build_config(prompt, args.method, args.prior, args.preset, overrides)
        prior = prior or load_prior(resolve_prior_spec(cfg.prior), torch.device("cpu"))
        t0 = time.perf_counter()
        trainer = Trainer(cfg, prior, Path(args.work) / prompt.replace(" ", "_"))
        trainer.run()
        seconds = time.perf_counter() - t0
        cams = turntable(8, elevation=15.0)
        rgb = trainer.renderer.render_chunked(trainer.field, cams, 64).rgb
        v = judge_images(judge, rgb)
        ok = [x.cls == cls and x.colour == colour for x in v]
        results.append(
            {
                "prompt": prompt,
                "views_ok": sum(ok),
                "views": len(ok),
                "train_seconds": seconds,
                "verdicts": [f"{x.colour} {x.cls}" for x in v],
            }
        )
        print(
            f"{prompt:<20} {sum(ok)}/{len(ok)} views judged right  ({seconds:.0f}s)  {[f'{x.colour} {x.cls}' for x in v]}",
            flush=True,
        )
        if args.grid:
            from PIL import Image

            from engine.priors.sample import image_grid

            Image.fromarray(image_grid(rgb, ncols=8, scale=2)).save(
                Path(args.work) / f"{prompt.replace(' ', '_')}.png"
            )
    return {"method": args.method, "preset": args.preset, "seed": args.seed, "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("samples", help="judge the prior's own samples")
    s.add_argument("--n", type=int, default=4)
    s.add_argument("--steps", type=int, default=50)
    s.add_argument("--cfg", type=float, default=5.0)
    s.add_argument("--grid", help="also save all samples as one PNG")
    g = sub.add_parser("generate", help="judge generated assets")
    g.add_argument("prompts", nargs="+")
    g.add_argument("--method", default="sds")
    g.add_argument("--preset", default="fast")
    g.add_argument("--steps", type=int, default=0, help="override the preset's steps")
    g.add_argument("--work", default="outputs/eval_generate")
    g.add_argument("--grid", action="store_true", help="save the 8 judged views per prompt")
    for q in (s, g):
        q.add_argument("--prior", default="builtin")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    res = eval_samples(args) if args.what == "samples" else eval_generate(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
