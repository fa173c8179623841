"""How much does ESD's ε_ψ learn within a run? The camera gap ‖ε_ψ(c) − ε_ψ(∅)‖ / ‖ε_ψ(∅)‖ over the steps.

    python scripts/measure_eps_psi.py "a red cube" [--method esd] [--steps 600] [--every 50] \
        [--json out.json] [-- --guidance.lora-lr 1e-3 --guidance.lora-steps 2 ...]

At initialisation ε_ψ(c) = ε_ψ(∅) = ε_φ exactly (zero LoRA B, zero camera output layer), so ESD's λ has no
effect until ε_ψ has learnt something; this measures how fast it does, on the real training loop (the
trainer's steps, the method's own draws), with any run settings after ``--`` (the flags of
``python -m engine.generate``). ESD logs the gap whenever it computes both branches (0 < λ < 1), and
λ's share of the field's update, λ·‖ε_ψ(c) − ε_ψ(∅)‖ / ‖g‖ (g = ε̂_φ − ε_ψ(c) + λ·(ε_ψ(c) − ε_ψ(∅)): what λ
can move); both are printed as the mean over each window of ``--every`` steps, with ε_ψ's own loss.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("prompt")
    p.add_argument("--method", default="esd", help="esd (or another method whose ε_ψ logs the gap)")
    p.add_argument("--prior", default="builtin")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=50, help="window of steps per printed row")
    p.add_argument("--json", type=Path, default=None, help="write the per-step values here")
    args = p.parse_args(own)

    from engine.cli import overrides_from
    from engine.config import build_config
    from engine.generate import build_parser
    from engine.priors import load_prior, resolve_prior_spec
    from engine.train import Trainer

    gen_parser, paths = build_parser()
    gen_args = gen_parser.parse_args([args.prompt, "--out", "unused.glb", *extra])
    overrides = {**overrides_from(gen_args, paths), "train.steps": args.steps, "train.checkpoint_every": 0}
    cfg = build_config(args.prompt, args.method, args.prior, "fast", overrides)
    prior = load_prior(resolve_prior_spec(cfg.prior), cfg.train.device)
    rows, steps = [], []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, prior, Path(tmp))
        for step in range(1, args.steps + 1):
            stats = trainer.train_step()
            steps.append({"step": step, **{k: v for k, v in stats.items() if isinstance(v, (int, float))}})
            if step % args.every == 0 or step == args.steps:
                row = {"step": step}
                for key in ("psi_camera_gap", "psi_lam_share", "lora_loss"):
                    window = [s[key] for s in steps[-args.every :] if key in s]
                    row[key] = sum(window) / len(window) if window else float("nan")
                rows.append(row)
                print(
                    f"step {step:5d}  camera gap {row['psi_camera_gap']:.5f}  λ's share of the update "
                    f"{row['psi_lam_share']:.4f}  ε_ψ loss {row['lora_loss']:.4f}",
                    flush=True,
                )
    seconds = time.perf_counter() - t0
    print(f"{args.steps} steps in {seconds:.0f} s; settings: {' '.join(extra) or 'defaults'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"prompt": args.prompt, "method": args.method, "extra": extra, "seconds": seconds}
        args.json.write_text(json.dumps({**payload, "windows": rows, "steps": steps}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
