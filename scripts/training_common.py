"""The skeleton the training scripts share (``scripts/train_corrective.py``, ``scripts/train_builtin_prior.py``).

A run parses its typed config from the command line, keeps ``checkpoint.pt`` and ``loss.jsonl`` in its work
folder, resumes from the checkpoint when one exists (refusing one made with other settings), steps while
its step count and wall-clock budget last (the budget counts the time of earlier sessions too), logs the loss
as JSON lines, follows a linear warm-up then a cosine decay to 10% of the learning rate, and records the
machine it ran on. What is trained, the loss and what is written at the end stay in each script.
"""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import torch

from engine.atomic import write_with
from engine.cli import OneLineParser, add_config_flags, overrides_from
from engine.configbase import to_dict

C = TypeVar("C")


def parse_train_config(
    prog: str, description: str, cls: type[C], argv: list[str] | None
) -> tuple[OneLineParser, C]:
    """The parser (for ``parser.error``) and the config of ``cls`` with the command line's overrides."""
    parser = OneLineParser(prog=prog, description=description)
    paths = add_config_flags(parser, cls, skip=set())
    args = parser.parse_args(argv)
    cfg = cls()
    for path, value in overrides_from(args, paths).items():
        setattr(cfg, path, value)
    return parser, cfg


REPO = Path(__file__).resolve().parents[1]


def repo_relative(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (training.json ships in the repo)."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


def command_line(prog: str, argv: list[str] | None) -> str:
    """The command that reproduces this run, as recorded in the model card / training.json."""
    command = prog + " " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    return command.strip()


def warmup_cosine(lr: float, warmup_steps: int, steps: int) -> Callable[[int], float]:
    """Learning rate at step s: linear warm-up over ``warmup_steps``, then cosine decay to 10% at ``steps``."""

    def lr_at(s: int) -> float:
        if s < warmup_steps:
            return lr * (s + 1) / warmup_steps
        frac = (s - warmup_steps) / max(steps - warmup_steps, 1)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    return lr_at


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def changed_settings(saved: dict, current: dict, free: set[str]) -> list[str] | None:
    """None when a checkpoint's settings match the current ones outside ``free`` (those may change on resume);
    else the current settings that differ, sorted (empty when only the checkpoint has extra settings)."""
    mine = {k: v for k, v in current.items() if k not in free}
    theirs = {k: v for k, v in saved.items() if k not in free}
    if mine == theirs:
        return None
    return sorted(k for k in mine if mine[k] != theirs.get(k))


def machine_info(device: str | None = None) -> dict[str, Any]:
    """What the run ran on, for the training record."""
    info: dict[str, Any] = {"cpu_threads": torch.get_num_threads()}
    if device is not None:
        info["device"] = device
    return info | {"torch": torch.__version__, "python": platform.python_version()}


@dataclass
class TrainingRun:
    """A resumable run's progress and files: ``checkpoint.pt`` and ``loss.jsonl`` in ``work_dir``."""

    work_dir: Path
    step: int = 0
    """Optimisation steps taken, over all sessions."""
    elapsed: float = 0.0
    """Seconds of training, over all sessions."""
    running: float | None = None
    """Running average of the logged loss (None before the first step)."""

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        self._started = 0.0
        self._log: IO[str] | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.work_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "loss.jsonl"

    def restore(self, state: dict) -> None:
        """Take the progress from a loaded checkpoint (after the caller restored its models) and say so."""
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.running = state.get("running")
        print(
            f"resumed from {self.checkpoint_path} at step {self.step} ({self.elapsed / 60:.1f} min done)",
            flush=True,
        )

    def resume(self, cfg: Any, free: set[str], fresh: bool, load: Callable[[dict], None]) -> None:
        """Continue from the checkpoint unless ``fresh`` (which also clears the loss log): refuse one made
        with other settings than ``cfg`` outside ``free``, else ``load(state)`` the models and restore."""
        if self.checkpoint_path.exists() and not fresh:
            state = torch.load(self.checkpoint_path, weights_only=False)
            if changed_settings(state["config"], to_dict(cfg), free) is not None:
                raise SystemExit(
                    f"error: {self.checkpoint_path} was made with other settings; pass --fresh to start over"
                )
            load(state)
            self.restore(state)
        elif fresh and self.log_path.exists():
            self.log_path.unlink()

    def progress_state(self, cfg: Any) -> dict:
        """The first entries of a checkpoint: the run's settings and its progress (see :meth:`restore`)."""
        return {"config": to_dict(cfg), "step": self.step, "elapsed": self.elapsed}

    def save(self, state: dict) -> None:
        """Write the checkpoint atomically: an interrupted write leaves the previous one."""
        write_with(self.checkpoint_path, lambda f: torch.save(state, f))

    def steps(
        self, steps: int, max_minutes: float, checkpoint_every: int, state: Callable[[], dict]
    ) -> Iterator[int]:
        """The index of each step to take while ``steps`` and the budget last, with the loss log open for
        :meth:`log`; the loop body ends each step with :meth:`count`. Saves ``state()`` as the checkpoint
        every ``checkpoint_every`` steps and once more when the loop ends."""
        self._started = time.perf_counter() - self.elapsed
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as self._log:
            while self.step < steps and (time.perf_counter() - self._started) < max_minutes * 60:
                yield self.step
                if self.step % checkpoint_every == 0:
                    self.save(state())
        self._log = None
        self.save(state())

    def count(self, value: float, keep: float, new: float) -> None:
        """One step done: the running average becomes ``keep · running + new · value``, the time is taken."""
        self.step += 1
        self.running = value if self.running is None else keep * self.running + new * value
        self.elapsed = time.perf_counter() - self._started

    def log(self, record: dict, line: str) -> None:
        """Append ``record`` to the loss log and print ``line``."""
        assert self._log is not None, "log() belongs inside the loop over steps()"
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()
        print(line, flush=True)


# ------------------------------------------------------------------------ text-to-image diffusion training


@dataclass
class DiffusionRecipe:
    """The recipe both built-in priors train their text-conditioned UNet with (pixel or latent)."""

    batch_size: int = 64
    """Images per UNet step."""
    lr: float = 1e-3
    """AdamW learning rate of the UNet and text encoder (after warm-up; cosine decay to 10% at the last step)."""
    warmup_steps: int = 200
    """Linear learning-rate warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    ema_decay: float = 0.999
    """EMA decay of the shipped weights (with the usual (1+n)/(10+n) warm-up)."""
    caption_dropout: float = 0.1
    """Probability of training on the empty caption (classifier-free guidance)."""
    min_snr_gamma: float = 5.0
    """min-SNR-γ loss weighting for ε-prediction: min(SNR, γ)/SNR (0: plain MSE)."""
    beta_schedule: str = "squaredcos_cap_v2"
    """DDPM beta schedule (cosine: ~zero terminal SNR)."""
    num_train_timesteps: int = 1000
    """Diffusion steps T."""
    text_dim: int = 64
    """Text encoder width (also the UNet's cross-attention dim)."""
    text_layers: int = 2
    """Text encoder transformer layers."""


class EMA:
    """Exponential moving average of parameters with the (1+n)/(10+n) warm-up."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.decay, self.n = decay, 0
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self, params: list[torch.nn.Parameter]) -> None:
        self.n += 1
        d = min(self.decay, (1 + self.n) / (10 + self.n))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in params], 1 - d)

    def copy_to(self, params: list[torch.nn.Parameter]) -> None:
        with torch.no_grad():
            for s, p in zip(self.shadow, params):
                p.copy_(s)


class DenoisingTrainer:
    """One step of ε-prediction training of a text-conditioned UNet with a jointly trained text encoder:
    caption dropout, t ~ U{0..T−1}, min-SNR-γ weights, grad-norm clipping at 1, AdamW, EMA. Random draws per
    step, in order: the dropped captions, t, the noise (all from ``gen``)."""

    def __init__(self, recipe: DiffusionRecipe, unet, text_encoder, tokenizer, scheduler, total_steps: int):
        self.r, self.unet, self.text_encoder, self.tokenizer = recipe, unet, text_encoder, tokenizer
        self.params = list(unet.parameters()) + list(text_encoder.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self.ema = EMA(self.params, recipe.ema_decay)
        self.ab = scheduler.alphas_cumprod.float()
        snr = self.ab / (1 - self.ab)
        g = recipe.min_snr_gamma
        self.loss_weight = (snr.clamp(max=g) / snr) if g > 0 else torch.ones_like(snr)
        self.empty_ids = tokenizer([""], padding="max_length", return_tensors="pt").input_ids
        self.lr_at = warmup_cosine(recipe.lr, recipe.warmup_steps, total_steps)

    def state(self) -> dict:
        return {
            "unet": self.unet.state_dict(),
            "text_encoder": self.text_encoder.state_dict(),
            "opt": self.opt.state_dict(),
            "ema": self.ema.shadow,
            "ema_n": self.ema.n,
        }

    def load(self, state: dict) -> None:
        self.unet.load_state_dict(state["unet"])
        self.text_encoder.load_state_dict(state["text_encoder"])
        self.opt.load_state_dict(state["opt"])
        self.ema.shadow, self.ema.n = state["ema"], state["ema_n"]

    def step(
        self, x0: torch.Tensor, captions: list[str], step: int, gen: torch.Generator
    ) -> tuple[float, float]:
        """One optimisation step on clean samples ``x0`` (pixels in [-1, 1] or scaled latents); returns the
        weighted loss and the plain MSE."""
        r, b = self.r, x0.shape[0]
        ids = self.tokenizer(captions, padding="max_length", return_tensors="pt").input_ids
        drop = torch.rand(b, generator=gen) < r.caption_dropout
        ids[drop] = self.empty_ids
        t = torch.randint(0, r.num_train_timesteps, (b,), generator=gen)
        noise = torch.randn(x0.shape, generator=gen)
        a = self.ab[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        emb = self.text_encoder(ids).last_hidden_state
        pred = self.unet(xt, t, encoder_hidden_states=emb).sample
        per = torch.nn.functional.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        loss = (per * self.loss_weight[t]).mean()
        set_lr(self.opt, self.lr_at(step))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.ema.update(self.params)
        return float(loss.detach()), float(per.detach().mean())

    def use_ema(self) -> None:
        """Put the EMA weights into the models, in eval mode, for export."""
        self.ema.copy_to(self.params)
        self.unet.eval()
        self.text_encoder.eval()
