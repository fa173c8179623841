"""Evaluation runs: train a NeRF for one (prompt, method, seed, settings), render its turntable, cache it.

A run is identified by the SHA-256 of its fully resolved :class:`engine.config.RunConfig` and the
evaluation cameras, so two suites that need the same run (e.g. LMC-SDS at its default ω for recognition
and for the ω sweep) share it, and a changed setting makes a new run. Each run lives in
``<root>/<slug>-<key>/``:

    views.npz    rgb [V, 3, H, W] and mask [V, 1, H, W] (float32), azimuth [V] (degrees)
    views.png    the V views side by side, for eyes
    run.json     the spec, the resolved config, timings, final loss, versions, commit — written last (atomically),
                 so its presence means the run is complete; an interrupted evaluation skips such runs.

Training is in-process with one shared prior (loaded once, only when a run is missing). No mesh is
exported and no checkpoint is written: every metric reads NeRF renders.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import engine
from engine import atomic
from engine.config import RunConfig, build_config
from engine.evaluation import report
from engine.evaluation.views import ViewConfig, Views, nerf_views, spec_for_prompt, true_radius


@dataclass(frozen=True)
class RunSpec:
    """What one evaluation run trains; settings beyond the method's defaults go in ``overrides``."""

    prompt: str
    method: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()
    """(dotted path, value) pairs applied after the shared run settings, e.g. (("guidance.lam", 1.0),)."""
    export: bool = False
    """Also export the asset (``asset.glb`` in the run folder, with the run config's export settings)."""

    def label(self) -> str:
        extra = " ".join(f"{k.split('.')[-1]}={v}" for k, v in self.overrides)
        return f"{self.method} {self.prompt!r} s{self.seed}" + (f" {extra}" if extra else "")


@dataclass
class RunSettings:
    """Settings shared by every evaluation run (dotted overrides of the fast preset)."""

    prior: str = "builtin"
    preset: str = "fast"
    overrides: dict[str, Any] = field(default_factory=dict)
    """e.g. {"train.steps": 300, "train.render_size": 64}."""

    def config(self, spec: RunSpec) -> RunConfig:
        over = {
            **self.overrides,
            "train.seed": spec.seed,
            "train.preview_every": 0,
            "train.checkpoint_every": 0,
            **dict(spec.overrides),
        }
        return build_config(spec.prompt, spec.method, self.prior, self.preset, over)


@dataclass
class RunResult:
    """A finished run: its renders and its record."""

    spec: RunSpec
    key: str
    views: Views | None
    """None when training diverged (``record["diverged"]`` says where)."""
    record: dict[str, Any]
    cached: bool
    """Loaded from an earlier evaluation rather than trained now."""
    folder: Path | None = None
    """The run's folder in the store."""

    @property
    def asset(self) -> Path | None:
        """The exported .glb of a run with ``spec.export`` (None otherwise or when training diverged)."""
        if self.folder is None or not self.record.get("export"):
            return None
        return self.folder / ASSET_NAME

    @property
    def diverged(self) -> bool:
        return self.views is None

    @property
    def train_seconds(self) -> float:
        return float(self.record["seconds"]["train"])


ASSET_NAME = "asset.glb"


def run_key(cfg: RunConfig, views: ViewConfig, export: bool = False) -> str:
    """Hex digest identifying a run: its resolved config, the evaluation cameras and whether it exports."""
    content: dict[str, Any] = {"config": cfg.to_dict(), "views": dataclasses.asdict(views)}
    if export:  # only then, so the keys of runs without an asset stay what they were
        content["export"] = True
    blob = json.dumps(content, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _slug(spec: RunSpec) -> str:
    text = f"{spec.method}-{spec.prompt}-s{spec.seed}"
    return re.sub(r"[^a-z0-9.-]+", "_", text.lower()).strip("_")


class RunStore:
    """The cache of finished runs under one folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def folder(self, spec: RunSpec, key: str) -> Path:
        return self.root / f"{_slug(spec)}-{key}"

    def load(self, spec: RunSpec, key: str) -> RunResult | None:
        d = self.folder(spec, key)
        if not (d / "run.json").exists():
            return None
        record = json.loads((d / "run.json").read_text())
        if record.get("diverged"):
            return RunResult(spec, key, None, record, cached=True, folder=d)
        with np.load(d / "views.npz") as z:
            views = Views(
                torch.from_numpy(z["rgb"]),
                torch.from_numpy(z["mask"]),
                torch.from_numpy(z["azimuth"]),
                record.get("framing"),
            )
        return RunResult(spec, key, views, record, cached=True, folder=d)

    def save(self, result: RunResult) -> None:
        d = self.folder(result.spec, result.key)
        d.mkdir(parents=True, exist_ok=True)
        v = result.views
        if v is not None:
            atomic.write_with(
                d / "views.npz",
                lambda f: np.savez_compressed(
                    f, rgb=v.rgb.numpy(), mask=v.mask.numpy(), azimuth=v.azimuth.numpy()
                ),
            )
            _save_strip(v.rgb, d / "views.png")
        atomic.write_json(d / "run.json", result.record)


def _save_strip(rgb: torch.Tensor, path: Path) -> None:
    from PIL import Image

    strip = (rgb.clamp(0, 1).permute(2, 0, 3, 1).reshape(rgb.shape[2], -1, 3) * 255).round().byte()
    Image.fromarray(strip.numpy()).save(path)


def train_and_render(
    spec: RunSpec, cfg: RunConfig, prior, views: ViewConfig, run_dir: Path
) -> tuple[Views | None, dict[str, Any]]:
    """Train ``cfg`` with ``prior`` in this process (no checkpoint, no export) and render the turntable.
    Returns the views (None when training diverged: a NaN/inf loss or gradient) and the run's record."""
    from engine.train import Trainer, TrainingDiverged

    t0 = time.perf_counter()
    trainer = Trainer(cfg, prior, run_dir)
    t1 = time.perf_counter()
    diverged = None
    try:
        while trainer.step < cfg.train.steps:
            trainer.train_step()
    except TrainingDiverged as e:
        diverged = f"diverged at step {trainer.step}: {str(e).split(':')[0]}"
    t2 = time.perf_counter()
    out = None if diverged else nerf_views(trainer, views, true_radius(spec_for_prompt(spec.prompt), views))
    t3 = time.perf_counter()
    exported = None
    if spec.export and not diverged:
        from engine.export import export_asset

        run_dir.mkdir(parents=True, exist_ok=True)
        exported = export_asset(trainer.field, cfg.export, run_dir / ASSET_NAME).to_dict()
    t4 = time.perf_counter()
    record = {
        "spec": {**dataclasses.asdict(spec), "overrides": dict(spec.overrides)},
        "label": spec.label(),
        "config": cfg.to_dict(),
        "views": dataclasses.asdict(views),
        "framing": None if out is None else out.framing,
        "final_loss": trainer.last_loss if math.isfinite(trainer.last_loss) else None,
        "diverged": diverged,
        "seconds": {"setup": t1 - t0, "train": t2 - t1, "render": t3 - t2, "export": t4 - t3},
        "export": exported,
        "steps": trainer.step,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Cached runs outlive the commit that trained them: each carries its own.
        "commit": report.git_commit(),
        "versions": {
            "engine": engine.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
        },
    }
    del trainer  # ESD's ε_ψ removes its LoRA adapter from the shared prior when collected
    gc.collect()
    return out, record


def get_run(
    spec: RunSpec,
    settings: RunSettings,
    views: ViewConfig,
    store: RunStore,
    prior_factory: Callable[[], Any],
) -> RunResult:
    """The cached run, or train it now (``prior_factory()`` gives the shared prior) and cache it."""
    cfg = settings.config(spec)
    key = run_key(cfg, views, spec.export)
    cached = store.load(spec, key)
    if cached is not None:
        return cached
    folder = store.folder(spec, key)
    rendered, record = train_and_render(spec, cfg, prior_factory(), views, folder)
    result = RunResult(spec, key, rendered, record, cached=False, folder=folder)
    store.save(result)
    return result


__all__ = [
    "ASSET_NAME",
    "RunResult",
    "RunSettings",
    "RunSpec",
    "RunStore",
    "get_run",
    "run_key",
    "train_and_render",
]
