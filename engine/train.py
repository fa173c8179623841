"""The optimisation loop: cameras → render → guidance → Adam step, with progress, previews, cancel,
checkpoints and divergence detection.

Randomness comes from three CPU generators seeded from ``train.seed`` — cameras, rendering (sample
jitter, shading, light) and guidance (timesteps, noise) — so one stream's consumption never shifts
another's, and a checkpoint stores all three: a resumed run continues exactly where it stopped. The
field's initial parameters come from a fourth generator seeded from ``train.seed``, never from torch's
global generator: that one is shared by every thread of the process, so two jobs starting together on
two server workers would otherwise draw each other's numbers.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import atomic
from engine.cameras import View, orbit_cameras
from engine.config import RunConfig
from engine.guidance import PromptEmbeddings
from engine.priors.base import DiffusionPrior

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.pt"
# Settings that may differ between a checkpoint and the run resuming it (they do not change the maths).
_RESUMABLE_DIFFERENCES = {
    "checkpoint_every",
    "preview_every",
    "preview_seconds",
    "preview_size",
    "device",
    "steps",
    "export",
}

MODEL_BUILD_LOCK = threading.RLock()
"""Held while modules are built or loaded, because two things make that unsafe on concurrent threads (the
server's workers): loading weights with diffusers/transformers patches torch process-wide (accelerate's
``init_empty_weights`` puts every parameter created meanwhile on the meta device, on any thread), and
some builders draw from, or reseed, torch's global generator (ESD seeds its ε_ψ with ``fork_rng`` +
``manual_seed``, which is private only while no other thread uses that generator). Training needs no
lock: it draws only from the run's own generators."""


class TrainingDiverged(RuntimeError):
    """The loss or a gradient became NaN/inf; the last good checkpoint is kept."""


@dataclass
class Progress:
    step: int
    """Steps completed."""
    total: int
    loss: float
    its: float
    """Iterations per second (moving average)."""
    eta_s: float
    """Estimated seconds left."""
    grad_norm: float
    t: float
    """Mean diffusion timestep of this step, as t/T."""


@dataclass
class Callbacks:
    """Hooks the CLI and the server attach; each may be None. They run on the training thread and must be quick."""

    on_progress: Callable[[Progress], None] | None = None
    on_preview: Callable[[int, np.ndarray], None] | None = None
    """(step, uint8 image [H, W, 3])."""
    on_checkpoint: Callable[[int, Path], None] | None = None


@dataclass
class TrainResult:
    status: str
    """"finished" or "cancelled"."""
    step: int
    seconds: float
    final_loss: float


class Trainer:
    """Owns the field, renderer, guidance and optimiser of one run."""

    def __init__(
        self, cfg: RunConfig, prior: DiffusionPrior, run_dir: Path | str, callbacks: Callbacks | None = None
    ):
        cfg.validate()
        prior.vocabulary_check(cfg.prompt)
        self.cfg, self.prior = cfg, prior
        self.run_dir = Path(run_dir)
        self.callbacks = callbacks or Callbacks()
        self.device = prior.device
        seed = cfg.train.seed
        with MODEL_BUILD_LOCK:
            # Parameter initialisation from the run's seed alone (the generator is seeded as
            # torch.manual_seed(seed) seeded the global one before, so a seed gives the same field as then).
            self.field = cfg.field.setup(self.device, generator=torch.Generator().manual_seed(seed))
            self.renderer = cfg.renderer.setup(cfg.field.bound).to(self.device)
            self.guidance = cfg.guidance.setup(prior, seed=cfg.train.seed)
        self.sampler = cfg.cameras.setup()
        self.regularizers = cfg.regularizers.setup(cfg.field.bound)
        self.gens = {
            name: torch.Generator().manual_seed(seed * 1000 + i)
            for i, name in enumerate(("camera", "render", "guidance"))
        }
        groups = self.field.param_groups()
        param_groups = [
            {"params": groups["grid"], "lr": cfg.train.lr_grid, "name": "grid"},
            {"params": groups["mlp"], "lr": cfg.train.lr_mlp, "name": "mlp"},
        ]
        bg = [p for p in self.renderer.parameters() if p.requires_grad]
        if bg:
            param_groups.append({"params": bg, "lr": cfg.train.lr_background, "name": "background"})
        # eps=1e-15 as instant-NGP: hash entries see sparse gradients and a larger eps stalls them.
        self.optimizer = torch.optim.Adam(param_groups, betas=(0.9, 0.99), eps=1e-15)
        self.text = self._encode_prompts()
        self.step = 0
        self.last_loss = float("nan")

    # ------------------------------------------------------------------ prompts
    def _encode_prompts(self) -> dict[Any, torch.Tensor]:
        """Embeddings of the bare prompt, each view-suffixed prompt, and the empty prompt (computed once)."""
        p = self.cfg.prompt.strip()
        keys: list[Any] = [None, "", *View]
        texts = [p, "", *(p + v.suffix for v in View)]
        emb = self.prior.encode_prompts(texts)
        return {k: emb[i : i + 1] for i, k in enumerate(keys)}

    def prompt_embeddings(self, cams) -> PromptEmbeddings:
        if self.cfg.cameras.view_dependent_prompt:
            cond = torch.cat([self.text[v] for v in self.sampler.views(cams)])
        else:
            cond = self.text[None].expand(len(cams), -1, -1)
        b = len(cams)
        return PromptEmbeddings(
            cond=cond, uncond=self.text[""].expand(b, -1, -1), plain=self.text[None].expand(b, -1, -1)
        )

    # ------------------------------------------------------------------ loop
    def train_step(self) -> dict[str, float]:
        """One optimisation step; raises TrainingDiverged on NaN/inf."""
        cfg, step, total = self.cfg, self.step, self.cfg.train.steps
        self.field.set_progress(step, total)
        occ = self.renderer.occupancy_grid
        if step % occ.cfg.update_every == 0:
            occ.update(self.field.density, self.gens["render"])
        cams = self.sampler.sample(cfg.train.batch_size, self.gens["camera"])
        shading = self.renderer.pick_shading(step, self.gens["render"])
        light = self.renderer.random_light(cams, self.gens["render"]).to(self.device)
        out = self.renderer.render(
            self.field, cams.to(self.device), cfg.train.render_size, shading, light, self.gens["render"]
        )
        g = self.guidance(
            out.rgb, self.prompt_embeddings(cams), step, total, self.gens["guidance"], cameras=cams.c2w
        )
        reg = self.regularizers(self.field, out, step, total, self.gens["render"])
        loss = g.loss + sum(reg.values()) if reg else g.loss
        if not torch.isfinite(loss.detach()):
            raise TrainingDiverged(
                f"the loss became {float(loss)} at step {step}: lower the learning rates or the guidance scale "
                f"(the last checkpoint in {self.run_dir} is intact)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    raise TrainingDiverged(
                        f"a gradient of the {group['name']} parameters became NaN/inf at step {step}: lower the "
                        f"learning rates or the guidance scale (the last checkpoint in {self.run_dir} is intact)"
                    )
        self.optimizer.step()
        self.step += 1
        self.field.set_progress(self.step, total)  # after the last step: every level, for export and previews
        self.last_loss = float(loss.detach())
        return {
            "loss": self.last_loss,
            "grad_norm": g.grad_norm,
            "t": float(g.t.float().mean()) / self.prior.num_train_timesteps,
            "samples": out.n_samples_evaluated,
            **g.extras,  # method-specific scalars, e.g. ESD's ε_ψ loss
            **{f"reg_{k}": float(v.detach()) for k, v in reg.items()},
        }

    def run(self, cancel: threading.Event | None = None) -> TrainResult:
        """Train until ``train.steps`` or until ``cancel`` is set (then checkpoint and return "cancelled")."""
        tc = self.cfg.train
        started, its = time.perf_counter(), 0.0
        last = started
        last_preview = None  # a time-paced preview comes after this run's first step
        while self.step < tc.steps:
            if cancel is not None and cancel.is_set():
                self.save_checkpoint()
                return TrainResult("cancelled", self.step, time.perf_counter() - started, self.last_loss)
            stats = self.train_step()
            now = time.perf_counter()
            inst = 1.0 / max(now - last, 1e-9)
            its = inst if its == 0.0 else 0.9 * its + 0.1 * inst
            last = now
            if self.callbacks.on_progress:
                self.callbacks.on_progress(
                    Progress(
                        self.step,
                        tc.steps,
                        stats["loss"],
                        its,
                        (tc.steps - self.step) / max(its, 1e-9),
                        stats["grad_norm"],
                        stats["t"],
                    )
                )
            by_steps = tc.preview_every and (self.step % tc.preview_every == 0 or self.step == tc.steps)
            by_time = tc.preview_seconds and (
                last_preview is None or now - last_preview >= tc.preview_seconds
            )
            if (by_steps or by_time) and self.callbacks.on_preview:
                self.callbacks.on_preview(self.step, self.preview())
                last_preview = time.perf_counter()
            if tc.checkpoint_every and self.step % tc.checkpoint_every == 0 and self.step < tc.steps:
                self.save_checkpoint()
        self.save_checkpoint()
        return TrainResult("finished", self.step, time.perf_counter() - started, self.last_loss)

    @torch.no_grad()
    def preview(self, azimuth: float | None = None) -> np.ndarray:
        """A deterministic render (uint8 [H, W, 3]); by default the camera circles the object as training goes."""
        az = (self.step * 7.5) % 360.0 if azimuth is None else azimuth
        one = torch.ones(1)
        cams = orbit_cameras(one * 20.0, one * az, one * 2.5, one * 45.0).to(self.device)
        out = self.renderer.render_chunked(self.field, cams, self.cfg.train.preview_size)
        return (out.rgb[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def save_checkpoint(self) -> Path:
        """Atomically write everything needed to continue bit-for-bit (temp file, then rename)."""
        state = {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "field": self.field.state_dict(),
            "renderer": self.renderer.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "guidance": self.guidance.state_dict(),
            "generators": {k: g.get_state() for k, g in self.gens.items()},
            "last_loss": self.last_loss,
        }
        atomic.write_with(self.checkpoint_path, lambda f: torch.save(state, f))
        if self.callbacks.on_checkpoint:
            self.callbacks.on_checkpoint(self.step, self.checkpoint_path)
        return self.checkpoint_path

    def load_checkpoint(self, path: Path | str | None = None) -> int:
        """Restore a checkpoint written by a run with the same settings; returns the step to continue from."""
        path = Path(path) if path is not None else self.checkpoint_path
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no checkpoint at {path}: start without --resume") from None
        except Exception as e:  # a truncated or foreign file
            raise ValueError(f"cannot read checkpoint {path}: {e}") from None
        diff = _config_differences(state["config"], self.cfg.to_dict())
        if diff:
            raise ValueError(
                f"checkpoint {path} was made with different settings ({', '.join(diff[:5])}); "
                "resume with the same settings or start a new run"
            )
        self.field.load_state_dict(state["field"])
        self.renderer.load_state_dict(state["renderer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.guidance.load_state_dict(state["guidance"])
        for k, g in self.gens.items():
            g.set_state(state["generators"][k])
        self.step = int(state["step"])
        self.field.set_progress(self.step, self.cfg.train.steps)
        self.last_loss = float(state.get("last_loss", math.nan))
        log.info("resumed from %s at step %d", path, self.step)
        return self.step


def _config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k in _RESUMABLE_DIFFERENCES:
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: {va!r} vs {vb!r}")
    return out
