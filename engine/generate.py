"""``python -m engine.generate "a prompt" --out asset.glb`` — one text-to-3D run from the terminal.

Writes the asset, and beside it a run folder ``<stem>_run/`` with ``run.json`` (the full resolved
config and timings), ``previews/`` and the resumable ``checkpoint.pt``. With ``--out DIR`` the asset is
``DIR/asset.glb`` and the run folder is ``DIR`` itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import engine  # noqa: F401  (sets THP_MEM_ALLOC_ENABLE before torch allocates)
from engine.cli import OneLineParser, add_config_flags, overrides_from
from engine.config import PRESETS, RunConfig, build_config
from engine.guidance import METHODS
from engine.priors import PRIOR_SPEC_FORMS

EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


@dataclass
class OutputPaths:
    asset: Path
    run_dir: Path

    @classmethod
    def from_arg(cls, out: str) -> OutputPaths:
        p = Path(out).expanduser()
        if p.suffix.lower() == ".glb":
            return cls(p, p.with_name(p.stem + "_run"))
        if p.suffix:
            raise ValueError(f"--out {out!r}: give a .glb file or a folder")
        return cls(p / "asset.glb", p)

    def check_writable(self) -> None:
        for d in (self.asset.parent, self.run_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
                probe = d / ".write_test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as e:
                raise ValueError(f"cannot write to {d}: {e.strerror or e}; choose another --out") from None


def build_parser() -> tuple[OneLineParser, list[str]]:
    parser = OneLineParser(
        prog="python -m engine.generate",
        description="Generate a textured 3D asset from a text prompt by score distillation.",
    )
    parser.add_argument("prompt", help='what to generate, e.g. "a red cube"')
    parser.add_argument("--out", required=True, help="output .glb file, or a folder (writes asset.glb there)")
    parser.add_argument(
        "--method",
        default="sds",
        help="guidance method (default sds): " + "; ".join(f"{n}: {c.summary}" for n, c in METHODS.items()),
    )
    parser.add_argument(
        "--prior",
        default="builtin",
        help="diffusion prior (default builtin): " + "; ".join(PRIOR_SPEC_FORMS),
    )
    parser.add_argument(
        "--preset", default="fast", help=f"settings preset: {', '.join(PRESETS)} (default fast)"
    )
    parser.add_argument(
        "--seeds",
        help="comma-separated seeds, one asset each (e.g. 1,2,3; assets get an _s<seed> suffix); default: --train.seed",
    )
    parser.add_argument(
        "--variants", type=int, default=1, help="K assets from seeds train.seed … train.seed+K-1 (default 1)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    paths = add_config_flags(parser, RunConfig, skip={"prompt", "prior", "preset"})
    return parser, paths


def run(argv: list[str] | None = None) -> int:
    parser, paths = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return _run(args, paths)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError) as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # one line for the user; --debug for the traceback
        if args.debug:
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_FAILED


def _run(args, paths: list[str]) -> int:
    from engine.device import resolve_device

    cfg = build_config(args.prompt, args.method, args.prior, args.preset, overrides_from(args, paths))
    out = OutputPaths.from_arg(args.out)
    out.check_writable()
    from engine.variants import JobPlan, run_variant, variant_seeds

    job = JobPlan(cfg, variant_seeds(cfg.train.seed, _parse_seeds(args.seeds), args.variants))
    variants = job.variants(out.asset, out.run_dir)
    if args.resume and not any((v.run_dir / "checkpoint.pt").exists() for v in variants):
        raise ValueError(f"--resume: no checkpoint in {out.run_dir}")
    device = resolve_device(cfg.train.device)

    from engine.priors import load_prior, resolve_prior_spec

    prior_cfg = resolve_prior_spec(cfg.prior)
    t0 = time.perf_counter()
    prior = load_prior(prior_cfg, device)
    prior.vocabulary_check(cfg.prompt)
    t_load = time.perf_counter() - t0

    from engine.train import Callbacks

    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train.steps, desc=cfg.prompt[:40], unit="it", dynamic_ncols=True)

    def on_progress(p) -> None:
        if bar is not None:
            bar.n = p.step
            bar.set_postfix(loss=f"{p.loss:.4g}", t=f"{p.t:.2f}", refresh=False)
            bar.refresh()

    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: checkpoint, then stop
    try:
        for v in variants:
            resume = args.resume and (v.run_dir / "checkpoint.pt").exists()
            if bar is not None:
                bar.reset(total=cfg.train.steps)
                bar.set_description(f"{cfg.prompt[:32]} s{v.seed}" if len(variants) > 1 else cfg.prompt[:40])
            previews = v.run_dir / "previews"
            previews.mkdir(parents=True, exist_ok=True)
            callbacks = Callbacks(on_progress=on_progress, on_preview=_preview_writer(previews))
            r = run_variant(job.config_for(v), prior, v, callbacks, cancel, resume, t_load)
            if r.status == "cancelled":
                print(
                    f"stopped at step {r.step} of seed {v.seed}; continue with --resume (checkpoint in {v.run_dir})",
                    file=sys.stderr,
                )
                return EXIT_INTERRUPTED
            sec = r.record["seconds"]
            print(
                f"wrote {v.asset} ({r.record['mesh']['faces']} faces) in {sec['train'] + sec['export']:.0f}s; "
                f"run folder {v.run_dir}"
            )
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    return 0


def _parse_seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise ValueError(f"--seeds {text!r}: give comma-separated integers, e.g. --seeds 1,2,3") from None


def _preview_writer(folder: Path):
    def on_preview(step: int, img) -> None:
        from PIL import Image

        Image.fromarray(img).save(folder / f"step_{step:05d}.png")

    return on_preview


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    main()
