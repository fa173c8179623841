"""Train the built-in prior: a small text-to-image pixel diffusion model of the procedural world.

    python scripts/train_builtin_prior.py --max-minutes 55            # resumes automatically if interrupted
    python scripts/train_builtin_prior.py --help                      # every setting, from the config docs

Data are rendered on the fly by ``engine.world`` (captions with view suffixes, the view bias that causes
Janus). Model: diffusers ``UNet2DConditionModel`` (ε-prediction, cross-attention only at 8×8 and in the
mid block: attention at 16×16 costs 3–4× on this CPU) + a small CLIP text encoder trained jointly + a
word-level tokenizer + a DDPM scheduler config, saved in diffusers layout (fp16 safetensors) so
``engine.priors.pixel`` loads it offline. Caption dropout makes classifier-free guidance work; the
shipped weights are an EMA.

Choices against the colour drift an earlier probe saw (samples turning greyish with complementary-tinted
backgrounds as training went on): a cosine schedule, whose terminal SNR is ~0 so sampling from pure noise
matches training (a linear schedule leaks the image mean at t = T); x₀ clipping in the sampler; EMA
weights; and min-SNR-γ loss weighting (Hang et al. 2023) for faster convergence at low t.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401  (THP before torch allocates)
from engine.configbase import to_dict  # noqa: E402
from scripts.training_common import (  # noqa: E402
    DenoisingTrainer,
    DiffusionRecipe,
    TrainingRun,
    command_line,
    machine_info,
    parse_train_config,
    repo_relative,
)

PROG = "python scripts/train_builtin_prior.py"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class PriorTrainConfig(DiffusionRecipe):
    """Training of the built-in prior (the diffusion recipe's settings are :class:`DiffusionRecipe`'s)."""

    out: str = str(REPO / "engine" / "priors" / "builtin_pixel32")
    """Folder the finished model is written to (diffusers layout + model card); the shipped
    ``builtin-pixel32`` prior lives there."""
    work_dir: str = str(REPO / "outputs" / "builtin_prior_train")
    """Checkpoints and the loss log; a run resumes from here when a checkpoint exists."""
    seed: int = 0
    """Seeds data, initialisation and noise."""
    steps: int = 6000
    """Optimisation steps (the run also stops at max_minutes)."""
    max_minutes: float = 55.0
    """Wall-clock budget; at the limit the run checkpoints and writes the model."""
    resolution: int = 32
    """Native resolution of the prior (the engine renders at 64 and downsamples)."""
    unet_channels: tuple[int, int, int] = (32, 64, 128)
    """UNet block_out_channels (32 → 16 → 8 px)."""
    layers_per_block: int = 1
    """ResNet layers per UNet block."""
    checkpoint_every: int = 200
    """Steps between checkpoints."""
    log_every: int = 25
    """Steps between loss log lines."""
    fresh: bool = False
    """Ignore an existing checkpoint in work_dir and start over."""
    export_only: bool = False
    """Write the model from the latest checkpoint without training (e.g. to look at a run in progress)."""


def build_text_model(vocab: list[str], text_dim: int, text_layers: int):
    """The word-level tokenizer of the world's vocabulary and a small CLIP text encoder trained with the UNet
    (shared by the built-in pixel prior and the latent prior)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from engine.priors.words import word_level_tokenizer

    tokenizer = word_level_tokenizer(vocab, max_length=16)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=text_dim,
            intermediate_size=2 * text_dim,
            num_hidden_layers=text_layers,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    return tokenizer, text_encoder


def build_models(cfg: PriorTrainConfig, vocab: list[str]):
    from diffusers import DDPMScheduler, UNet2DConditionModel

    tokenizer, text_encoder = build_text_model(vocab, cfg.text_dim, cfg.text_layers)
    c = cfg.unet_channels
    unet = UNet2DConditionModel(
        sample_size=cfg.resolution,
        in_channels=3,
        out_channels=3,
        block_out_channels=c,
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=cfg.text_dim,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        prediction_type="epsilon",
        clip_sample=True,
    )
    return unet, text_encoder, tokenizer, scheduler


# Settings that may change when resuming.
RESUMABLE = {"fresh", "max_minutes", "steps", "checkpoint_every", "log_every", "export_only", "out"}


def train(cfg: PriorTrainConfig, command: str) -> dict:
    from engine.world.data import WorldConfig, WorldSampler, vocabulary

    torch.manual_seed(cfg.seed)
    world = WorldSampler(WorldConfig(size=cfg.resolution))
    vocab = vocabulary()
    unet, text_encoder, tokenizer, scheduler = build_models(cfg, vocab)
    trainer = DenoisingTrainer(cfg, unet, text_encoder, tokenizer, scheduler, cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    run = TrainingRun(Path(cfg.work_dir))

    def load(state: dict) -> None:
        trainer.load(state)
        gen.set_state(state["gen"])

    run.resume(cfg, RESUMABLE, cfg.fresh, load)

    def checkpoint_state() -> dict:
        return run.progress_state(cfg) | trainer.state() | {"running": run.running, "gen": gen.get_state()}

    if cfg.export_only:
        if run.step == 0:
            raise SystemExit(f"error: --export-only needs a checkpoint in {run.work_dir}")
        return export_model(cfg, command, trainer, scheduler, run.step, run.elapsed, None)
    unet.train()
    text_encoder.train()
    # step: the index of the step to take; run.step counts it once done
    for step in run.steps(cfg.steps, cfg.max_minutes, cfg.checkpoint_every, checkpoint_state):
        batch = world.sample_batch(cfg.batch_size, gen)
        loss, mse = trainer.step(batch.images * 2 - 1, batch.captions, step, gen)
        run.count(mse, keep=0.98, new=0.02)
        if run.step % cfg.log_every == 0:
            rec = {
                "step": run.step,
                "loss": loss,
                "mse": mse,
                "mse_avg": run.running,
                "lr": trainer.lr_at(run.step),  # the next step's
                "min": run.elapsed / 60,
            }
            run.log(
                rec,
                f"step {run.step:5d}  loss {loss:.4f}  mse(avg) {run.running:.4f}  {run.elapsed / 60:.1f} min",
            )

    info = export_model(cfg, command, trainer, scheduler, run.step, run.elapsed, run.running)
    # The loss log ships beside the weights (a few kB): the model card's curve is read from it.
    shutil.copyfile(run.log_path, Path(cfg.out) / "loss.jsonl")
    return info


def export_model(cfg, command, trainer: DenoisingTrainer, scheduler, step, elapsed, running) -> dict:
    """Write the EMA weights (fp16 safetensors) in diffusers layout, plus training.json."""
    trainer.use_ema()
    unet, text_encoder, tokenizer = trainer.unet, trainer.text_encoder, trainer.tokenizer
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    unet.half().save_pretrained(out / "unet", safe_serialization=True)
    text_encoder.half().save_pretrained(out / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(out / "tokenizer")
    scheduler.save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(
        json.dumps({"_class_name": "BuiltinPixelPrior", "_diffusers_version": "0.42.1"}, indent=2)
    )
    info = {
        "command": command,
        "seed": cfg.seed,
        "steps": step,
        "wall_minutes": round(elapsed / 60, 1),
        "final_mse_ema": running,
        "params_unet": sum(p.numel() for p in unet.parameters()),
        "params_text_encoder": sum(p.numel() for p in text_encoder.parameters()),
        "config": to_dict(cfg) | {"out": repo_relative(cfg.out), "work_dir": repo_relative(cfg.work_dir)},
        "machine": machine_info(),
    }
    (out / "training.json").write_text(json.dumps(info, indent=2))
    print(f"wrote {out} after {step} steps, {elapsed / 60:.1f} min, final mse {running}", flush=True)
    return info


def main(argv: list[str] | None = None) -> int:
    _, cfg = parse_train_config(PROG, __doc__.split("\n\n")[0], PriorTrainConfig, argv)
    train(cfg, command_line(PROG, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
