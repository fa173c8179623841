"""One generation job: a resolved config and a list of seeds → one asset per seed (variant).

This is the seam between the front ends (``engine.generate`` on the terminal, ``engine.serve`` over HTTP)
and the trainer/exporter: both build a :class:`JobPlan` and call :func:`run_variant` per variant with their own
callbacks. A distributed runner (Ray, many GPUs) maps :func:`run_variant` over the variants instead of
looping; nothing else changes.

Layout of a job folder::

    <dir>/asset.glb, asset_texture.png, asset_turntable.png   (one seed)
    <dir>/run.json, previews/, checkpoint.pt
    <dir>/seed_<s>/...                                           (several seeds: one such folder each)
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import engine
from engine import atomic
from engine.config import RunConfig
from engine.train import CHECKPOINT_NAME, Callbacks, Trainer

MAX_VARIANTS = 16
"""Upper bound on seeds per job (each is a full optimisation)."""


def variant_seeds(seed: int, seeds: list[int] | None = None, variants: int = 1) -> list[int]:
    """The seeds of a job: ``seeds`` if given, else ``variants`` consecutive seeds from ``seed``.

    With fixed-ε guidance each seed fixes its own noise (LMC-SDS paper §4), so the variants differ in more
    than their initial camera draws.
    """
    if seeds:
        if variants != 1:
            raise ValueError("give either seeds or variants, not both")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct (got {seeds})")
        out = list(seeds)
    else:
        if variants < 1:
            raise ValueError(f"variants must be >= 1 (got {variants})")
        out = [seed + k for k in range(variants)]
    if len(out) > MAX_VARIANTS:
        raise ValueError(f"{len(out)} variants requested; the limit is {MAX_VARIANTS} per job")
    if any(s < 0 for s in out):
        raise ValueError(f"seeds must be >= 0 (got {out})")
    return out


@dataclass
class Variant:
    """Where one seed's run lives."""

    index: int
    seed: int
    run_dir: Path
    """Run folder: run.json, previews/, checkpoint.pt."""
    asset: Path
    """The .glb (texture and turntable PNGs are written beside it)."""

    @property
    def checkpoint(self) -> Path:
        """The resumable checkpoint (written every ``train.checkpoint_every`` steps and on cancel)."""
        return self.run_dir / CHECKPOINT_NAME

    @property
    def record_path(self) -> Path:
        """run.json, written atomically after the export: its presence means this variant is done."""
        return self.run_dir / "run.json"

    @property
    def done(self) -> bool:
        return self.record_path.exists()


@dataclass
class JobPlan:
    """A resolved run config and the seeds to run it with."""

    config: RunConfig
    seeds: list[int]

    def variants(self, asset: Path, run_dir: Path) -> list[Variant]:
        """Variant paths: one seed uses ``asset``/``run_dir`` as given; several get ``_s<seed>`` suffixes
        on the asset and a ``seed_<seed>`` subfolder of ``run_dir``."""
        if len(self.seeds) == 1:
            return [Variant(0, self.seeds[0], run_dir, asset)]
        return [
            Variant(k, s, run_dir / f"seed_{s}", asset.with_name(f"{asset.stem}_s{s}{asset.suffix}"))
            for k, s in enumerate(self.seeds)
        ]

    def config_for(self, variant: Variant) -> RunConfig:
        cfg = RunConfig.from_dict(self.config.to_dict())
        cfg.train.seed = variant.seed
        return cfg


@dataclass
class VariantResult:
    status: Literal["done", "cancelled"]
    variant: Variant
    step: int
    record: dict
    """What run.json holds (config, timings, mesh stats, versions); empty when cancelled."""


def run_variant(
    cfg: RunConfig,
    prior,
    variant: Variant,
    callbacks: Callbacks | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    prior_load_seconds: float = 0.0,
    on_start: Callable[[int], None] | None = None,
) -> VariantResult:
    """Train one variant (resuming from its checkpoint when ``resume``), export it, write run.json.

    ``cancel`` checkpoints and returns status "cancelled" (it is also checked once more before the
    export, which cannot be interrupted); calling again with ``resume=True`` continues bit-for-bit.
    ``on_start(step)`` is called once training is about to start (step > 0 after a resume). Raises
    ``TrainingDiverged`` / ``ValueError`` with user-facing messages.
    """
    variant.run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, prior, variant.run_dir, callbacks or Callbacks())
    if resume:
        trainer.load_checkpoint()
    if on_start is not None:
        on_start(trainer.step)
    t1 = time.perf_counter()
    result = trainer.run(cancel)
    t_train = time.perf_counter() - t1
    if result.status == "cancelled":
        return VariantResult("cancelled", variant, result.step, {})
    if cancel is not None and cancel.is_set():
        # Training finished (and checkpointed) just as the cancel came: skip the export; a resume
        # loads the final checkpoint and goes straight to it.
        return VariantResult("cancelled", variant, result.step, {})

    from engine.export import export_asset

    t2 = time.perf_counter()
    exported = export_asset(trainer.field, cfg.export, variant.asset)
    t_export = time.perf_counter() - t2
    import torch

    record = {
        "config": cfg.to_dict(),
        "seed": variant.seed,
        "prior": prior.name,
        "device": str(trainer.device),
        "asset": str(variant.asset),
        "final_loss": result.final_loss,
        "seconds": {"prior_load": prior_load_seconds, "train": t_train, "export": t_export},
        "mesh": {"vertices": exported.n_vertices, "faces": exported.n_faces},
        "export": exported.to_dict(),
        "versions": {
            "engine": engine.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    atomic.write_json(variant.record_path, record, indent=2)
    return VariantResult("done", variant, result.step, record)


__all__ = ["MAX_VARIANTS", "JobPlan", "Variant", "VariantResult", "run_variant", "variant_seeds"]
