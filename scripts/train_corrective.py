"""Train the learned manifold corrective b̂_ψ of LMC-SDS for a diffusion prior (paper §4, eq. 10, app. 0.A).

    python scripts/train_corrective.py --max-minutes 22          # the built-in prior's; resumes if interrupted
    python scripts/train_corrective.py --help                    # every setting, from the config docs

b̂_ψ(z, t) learns the blur the prior's one-step denoiser applies to on-manifold images: triplets (z, ẑ_t, t)
with z drawn from the prior's own image distribution, t/T ~ U(0.02, 0.98), z_t = √ᾱ_t z + √(1−ᾱ_t) ε and
ẑ_t = z_φ(z_t, t) the prior's *unconditional* one-step denoised estimate; the only loss is eq. 10,
‖ẑ_t − renormalise(b̂_ψ(z, t), ẑ_t)‖² (mean over elements; ``engine.guidance.corrective``). For the
built-in priors z are world images (``engine.world``, their training distribution) rendered on the fly at
the prior's resolution (VAE-encoded for the latent one); for Stable Diffusion pass ``--images DIR`` (a folder of photos, VAE-encoded once,
with their mirror images). The result (fp16 safetensors + config.json + MODEL_CARD.md + loss.png +
eval.json) goes to ``<prior folder>/corrective`` (the prior's shipped corrective) or ``--out``.

Stable Diffusion on a GPU (not run here; SD's 64×64 latents take the paper's four levels):

    python scripts/train_corrective.py --prior sd --images ~/openimages_5k --out correctives/sd21 \\
        --device cuda --levels 4 --batch-size 128 --steps 100000 --max-minutes 600 --lr 1e-4 \\
        --work-dir outputs/corrective_train_sd
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401  (THP before torch allocates)
from engine.configbase import to_dict  # noqa: E402
from scripts.corrective.config import RESUMABLE, CorrectiveTrainConfig  # noqa: E402
from scripts.corrective.data import ImageSource, resolve_x0_clip, triplets  # noqa: E402
from scripts.corrective.report import export  # noqa: E402
from scripts.training_common import (  # noqa: E402
    TrainingRun,
    changed_settings,
    command_line,
    parse_train_config,
    set_lr,
    warmup_cosine,
)

PROG = "python scripts/train_corrective.py"


def train(cfg: CorrectiveTrainConfig, command: str) -> dict:
    from engine.device import resolve_device
    from engine.guidance.corrective import CorrectiveConfig, renormalise, shipped_corrective_dir
    from engine.priors import load_prior, resolve_prior_spec

    try:
        device = resolve_device(cfg.device)
        prior = load_prior(resolve_prior_spec(cfg.prior), device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(cfg.out).expanduser() if cfg.out else shipped_corrective_dir(prior.folder)
    if out is None:
        raise SystemExit(f"error: the prior {prior.name} is not a local folder: pass --out DIR")
    x0_clip = resolve_x0_clip(cfg.x0_clip, prior)
    activation = cfg.out_activation
    if activation == "auto":
        activation = "tanh" if prior.latent_channels == 3 else "none"
    ccfg = CorrectiveConfig(
        channels=prior.latent_channels,
        levels=cfg.levels,
        base_filters=cfg.base_filters,
        time_frequencies=cfg.time_frequencies,
        out_activation=activation,
        residual=cfg.residual,
        x0_clip=x0_clip,
    )
    if prior.latent_resolution % 2**cfg.levels:
        raise SystemExit(
            f"error: {cfg.levels} levels need z sides divisible by {2**cfg.levels}; the prior's are "
            f"{prior.latent_resolution}: lower --levels"
        )
    torch.manual_seed(cfg.seed)
    model = ccfg.setup().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    source = ImageSource(cfg, prior, device)
    uncond = prior.encode_prompts([""])

    run = TrainingRun(Path(cfg.work_dir))
    if run.checkpoint_path.exists() and not cfg.fresh:
        state = torch.load(run.checkpoint_path, weights_only=False, map_location=device)
        changed = changed_settings(state["config"], to_dict(cfg), RESUMABLE)
        if changed is not None:
            raise SystemExit(
                f"error: {run.checkpoint_path} was made with other settings ({', '.join(changed)}); pass "
                "--fresh true to start over or another --work-dir"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        run.restore(state)
    elif run.log_path.exists():
        run.log_path.unlink()  # a fresh run: the old curve is not this run's
    lr_at = warmup_cosine(cfg.lr, cfg.warmup_steps, cfg.steps)

    def checkpoint_state() -> dict:
        return run.progress_state(cfg) | {
            "running": run.running,
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "gen": gen.get_state(),
        }

    model.train()
    # step: the index of the step to take; run.step counts it once done
    for step in run.steps(cfg.steps, cfg.max_minutes, cfg.checkpoint_every, checkpoint_state):
        z, z_hat, t = triplets(prior, source, cfg.batch_size, cfg, x0_clip, gen, uncond)
        # Eq. 10: the loss is taken after renormalising b̂ to ẑ_t's σ (per image and channel).
        loss = ((z_hat - renormalise(model(z, t), z_hat)) ** 2).mean()
        lr = lr_at(step)
        set_lr(opt, lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        run.count(value, keep=0.95, new=0.05)
        if run.step % cfg.log_every == 0 or run.step == cfg.steps:
            rec = {
                "step": run.step,
                "loss": value,
                "loss_avg": run.running,
                "lr": lr,
                "min": run.elapsed / 60,
            }
            run.log(
                rec,
                f"step {run.step:5d}  loss {value:.5f}  avg {run.running:.5f}  {run.elapsed / 60:.1f} min",
            )
    return export(cfg, command, prior, model, source, out, run, x0_clip)


def main(argv: list[str] | None = None) -> int:
    parser, cfg = parse_train_config(PROG, __doc__.split("\n\n")[0], CorrectiveTrainConfig, argv)
    if not (0.0 <= cfg.t_min < cfg.t_max <= 1.0):
        parser.error(f"need 0 <= t-min < t-max <= 1 (got {cfg.t_min}, {cfg.t_max})")
    for name in ("steps", "batch_size", "eval_images", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    train(cfg, command_line(PROG, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
