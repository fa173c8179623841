"""``python -m engine.generate "a prompt" --out asset.glb`` — one text-to-3D run from the terminal.

Writes the asset, and beside it a run folder ``<stem>_run/`` with ``run.json`` (the full resolved
config and timings), ``previews/`` and the resumable ``checkpoint.pt``. With ``--out DIR`` the asset is
``DIR/asset.glb`` and the run folder is ``DIR`` itself.
"""

from __future__ import annotations

import json
import logging
import os
import platform
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
        "--method", default="sds", help=f"guidance method: {', '.join(METHODS)} (default sds)"
    )
    parser.add_argument(
        "--prior",
        default="builtin",
        help="builtin (default), a local diffusers folder (pixel prior or Stable Diffusion), sd, sd:<hub id or folder>",
    )
    parser.add_argument(
        "--preset", default="fast", help=f"settings preset: {', '.join(PRESETS)} (default fast)"
    )
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    paths = add_config_flags(parser, RunConfig, skip={"prompt", "method", "prior", "preset"})
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
    if args.resume and not (out.run_dir / "checkpoint.pt").exists():
        raise ValueError(f"--resume: no checkpoint in {out.run_dir}")
    device = resolve_device(cfg.train.device)

    from engine.priors import load_prior, resolve_prior_spec

    prior_cfg = resolve_prior_spec(cfg.prior)
    t0 = time.perf_counter()
    prior = load_prior(prior_cfg, device)
    prior.vocabulary_check(cfg.prompt)
    t_load = time.perf_counter() - t0

    from engine.train import Callbacks, Trainer

    previews = out.run_dir / "previews"
    previews.mkdir(parents=True, exist_ok=True)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train.steps, desc=cfg.prompt[:40], unit="it", dynamic_ncols=True)

    def on_progress(p) -> None:
        if bar is not None:
            bar.n = p.step
            bar.set_postfix(loss=f"{p.loss:.4g}", t=f"{p.t:.2f}", refresh=False)
            bar.refresh()

    def on_preview(step: int, img) -> None:
        from PIL import Image

        Image.fromarray(img).save(previews / f"step_{step:05d}.png")

    trainer = Trainer(cfg, prior, out.run_dir, Callbacks(on_progress=on_progress, on_preview=on_preview))
    if args.resume:
        trainer.load_checkpoint()
        if bar is not None:
            bar.n = trainer.step

    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())  # Ctrl-C: checkpoint, then stop
    t1 = time.perf_counter()
    try:
        result = trainer.run(cancel)
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    t_train = time.perf_counter() - t1
    if result.status == "cancelled":
        print(
            f"stopped at step {result.step}; continue with --resume (checkpoint in {out.run_dir})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED

    from engine.export import export_asset

    t2 = time.perf_counter()
    exported = export_asset(trainer.field, cfg.export, out.asset)
    t_export = time.perf_counter() - t2
    import torch

    record = {
        "config": cfg.to_dict(),
        "prior": prior.name,
        "device": str(device),
        "asset": str(out.asset),
        "final_loss": result.final_loss,
        "seconds": {"prior_load": t_load, "train": t_train, "export": t_export},
        "mesh": {"vertices": exported.n_vertices, "faces": exported.n_faces},
        "export": exported.to_dict(),
        "versions": {
            "engine": engine.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    (out.run_dir / "run.json").write_text(json.dumps(record, indent=2))
    print(
        f"wrote {out.asset} ({exported.n_faces} faces) in {t_train + t_export:.0f}s; run folder {out.run_dir}"
    )
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    main()
