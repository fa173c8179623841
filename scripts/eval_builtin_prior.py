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
        for item in args.set:
            key, _, value = item.partition("=")
            overrides[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
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


def write_card(args) -> dict:
    """engine/priors/builtin/README.md from training.json, the loss log, the samples evaluation and a grid."""
    from engine.priors import BUILTIN_PRIOR_DIR as d

    train = json.loads((d / "training.json").read_text())
    ev = json.loads(Path(args.samples_json).read_text())
    gen = json.loads(Path(args.generate_json).read_text()) if args.generate_json else None
    log = [json.loads(line) for line in Path(args.loss_log).read_text().splitlines() if line.strip()]
    curve = "\n".join(
        f"| {r['step']} | {r['min']:.1f} | {r['mse_avg']:.4f} |" for r in log[:: max(len(log) // 12, 1)]
    )
    table = "\n".join(
        f"| {r['caption']} | {r['class_ok']}/{r['n']} | {r['colour_ok']}/{r['n']} |" for r in ev["captions"]
    )
    gen_rows = ""
    if gen:
        gen_rows = "\n".join(
            f"| {r['prompt']} | {r['views_ok']}/{r['views']} | {r['train_seconds']:.0f} s |"
            for r in gen["results"]
        )
        gen_rows = (
            f"\n## Assets generated with it (method {gen['method']}, preset {gen['preset']}, seed {gen['seed']})\n\n"
            "NeRF rendered from 8 azimuths at 15° elevation; a view counts when the judge names the prompt's class "
            "and colour (`python scripts/eval_builtin_prior.py generate ...`).\n\n"
            "| prompt | views judged right | training time |\n|---|---|---|\n" + gen_rows + "\n"
        )
    cfg = train["config"]
    text = f"""# Built-in prior: a pixel-space text-to-image diffusion model of the procedural world

Trained by this repository's own script on images rendered on the fly by `engine.world` (8 object classes,
8 colours, the view bias of real photo collections; see `engine/world/data.py`). Loaded offline by
`engine.priors.pixel` (`--prior builtin`, the default).

## Training

- Command: `{train["command"]}`
- Seed: {train["seed"]}; steps: {train["steps"]} of batch {cfg["batch_size"]}; wall time: {train["wall_minutes"]} min on a
  2-core CPU ({train["machine"]["cpu_threads"]} torch threads, torch {train["machine"]["torch"]})
- Final loss (ε-MSE, running average): {train["final_mse_ema"]:.4f}
- Model: UNet2DConditionModel {cfg["unet_channels"]} ({train["params_unet"]:,} parameters, {cfg["layers_per_block"]} layer(s) per
  block, cross-attention at 8×8 and in the mid block), CLIP text encoder width {cfg["text_dim"]} × {cfg["text_layers"]} layers
  ({train["params_text_encoder"]:,} parameters), word-level tokenizer; {cfg["resolution"]}×{cfg["resolution"]} RGB, ε-prediction,
  {cfg["beta_schedule"]} schedule with T = {cfg["num_train_timesteps"]}, min-SNR-γ = {cfg["min_snr_gamma"]} weighting,
  caption dropout {cfg["caption_dropout"]}, AdamW lr {cfg["lr"]} (warm-up, cosine decay), EMA {cfg["ema_decay"]}.
  Weights stored in fp16.

Loss curve (running average of the per-image ε-MSE):

| step | minutes | loss |
|---|---|---|
{curve}

## Samples

![samples](sample_grid.png)

`python scripts/eval_builtin_prior.py samples --n {ev["n_per_caption"]} --grid engine/priors/builtin/sample_grid.png`
(DDIM {ev["ddim_steps"]} steps, CFG {ev["cfg"]}, seed {ev["seed"]}): every caption of the world, {ev["n_per_caption"]} samples each, read by
the judge (`engine/judge`).

**Judge agreement: class {ev["class_agreement"]:.1%}, colour {ev["colour_agreement"]:.1%}** over {len(ev["captions"]) * ev["n_per_caption"]} samples.

| caption | class right | colour right |
|---|---|---|
{table}
{gen_rows}
## Limits

Closed vocabulary (the words of `engine.world.data.vocabulary()`); anything else is refused with the list of
known words. 32×32 native resolution: the engine renders at 64 and the prior downsamples.
"""
    (d / "README.md").write_text(text)
    print(f"wrote {d / 'README.md'}")
    return {}


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
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. guidance.guidance_scale=20 (JSON values)",
    )
    c = sub.add_parser("card", help="write the built-in prior's model card")
    c.add_argument("--samples-json", required=True)
    c.add_argument("--generate-json")
    c.add_argument("--loss-log", default="outputs/builtin_prior_train/loss.jsonl")
    for q in (s, g):
        q.add_argument("--prior", default="builtin")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    res = {"samples": eval_samples, "generate": eval_generate, "card": write_card}[args.what](args)
    if getattr(args, "json", None):
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
