"""Train the learned manifold corrective b̂_ψ of LMC-SDS for a diffusion prior (paper §4, eq. 10, app. 0.A).

    python scripts/train_corrective.py --max-minutes 22          # the built-in prior's; resumes if interrupted
    python scripts/train_corrective.py --help                    # every setting, from the config docs

b̂_ψ(z, t) learns the blur the prior's one-step denoiser applies to on-manifold images: triplets (z, ẑ_t, t)
with z drawn from the prior's own image distribution, t/T ~ U(0.02, 0.98), z_t = √ᾱ_t z + √(1−ᾱ_t) ε and
ẑ_t = z_φ(z_t, t) the prior's *unconditional* one-step denoised estimate; the only loss is eq. 10,
‖ẑ_t − renormalise(b̂_ψ(z, t), ẑ_t)‖² (mean over elements; ``engine.guidance.corrective``). For the
built-in prior z are world images (``engine.world``, the prior's training distribution) rendered on the
fly at its resolution; for Stable Diffusion pass ``--images DIR`` (a folder of photos, VAE-encoded once,
with their mirror images). The result (fp16 safetensors + config.json + MODEL_CARD.md + loss.png +
eval.json) goes to ``<prior folder>/corrective`` (the prior's shipped corrective) or ``--out``.

Stable Diffusion on a GPU (not run here; SD's 64×64 latents take the paper's four levels):

    python scripts/train_corrective.py --prior sd --images ~/openimages_5k --out correctives/sd21 \\
        --device cuda --levels 4 --batch-size 128 --steps 100000 --max-minutes 600 --lr 1e-4 \\
        --work-dir outputs/corrective_train_sd
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import engine  # noqa: E402,F401  (THP before torch allocates)
from engine.cli import OneLineParser, add_config_flags, overrides_from  # noqa: E402
from engine.configbase import to_dict  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
T_BUCKETS = ((0.02, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.98))
"""t/T ranges of the evaluation table."""


@dataclass
class CorrectiveTrainConfig:
    """Training of a learned manifold corrective b̂_ψ."""

    prior: str = "builtin"
    """The prior whose denoiser bias b̂ imitates (as --prior of engine.generate)."""
    images: str | None = None
    """Folder of training images (png/jpg/webp, centre-cropped to squares); required for latent priors.
    None: images of the procedural world (engine.world), the built-in prior's training distribution."""
    out: str | None = None
    """Where the corrective is written; None: <prior folder>/corrective (the prior's shipped corrective)."""
    work_dir: str = str(REPO / "outputs" / "corrective_train")
    """Checkpoint and loss log; a run resumes from here when a checkpoint exists."""
    seed: int = 0
    """Seeds initialisation, data, timesteps and noise."""
    steps: int = 1200
    """Optimisation steps (the learning rate decays over these; the run also stops at max_minutes)."""
    max_minutes: float = 23.0
    """Wall-clock budget; at the limit the run checkpoints and writes the corrective."""
    batch_size: int = 32
    """Triplets (z, ẑ_t, t) per step (paper: 128)."""
    lr: float = 1e-3
    """Adam learning rate after warm-up, cosine-decayed to 10% at the last step (paper: 1e-4 for 750k steps)."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up."""
    t_min: float = 0.02
    """Lower end of t/T (paper: 0.02)."""
    t_max: float = 0.98
    """Upper end of t/T (paper: 0.98)."""
    levels: int = 3
    """U-Net encoder levels (paper: 4 at 128 px; 3 for 32 px z, 4 for Stable Diffusion's 64×64 latents)."""
    base_filters: int = 32
    """Filters of the first U-Net level (paper: 32)."""
    time_frequencies: int = 5
    """Frequencies of the timestep encoding (5 → the paper's 10 channels)."""
    out_activation: Literal["auto", "tanh", "none"] = "auto"
    """Output activation; auto: tanh for pixel priors (paper; z in [-1, 1]), none for latent priors."""
    residual: bool = True
    """b̂ = z + tanh(conv(…)), starting at the identity (see CorrectiveConfig.residual); false: the paper's b̂ = tanh(conv(…))."""
    x0_clip: str = "auto"
    """Clamp of ẑ_t: auto (1.0 for pixel priors, as their sampler clips x₀; none for latent priors), none, or a number."""
    device: str = "auto"
    """auto (CUDA if available, else CPU), cpu, cuda, cuda:N."""
    checkpoint_every: int = 100
    """Steps between checkpoints."""
    log_every: int = 25
    """Steps between loss log lines."""
    eval_images: int = 64
    """Held-out images for the ‖b̂(z,t) − z‖-per-t table of the model card."""
    fresh: bool = False
    """Ignore an existing checkpoint in work_dir and start over."""


# Settings that may change when resuming (they do not change the maths of the steps already taken).
RESUMABLE = {"fresh", "max_minutes", "steps", "checkpoint_every", "log_every", "out", "device", "eval_images"}


class ImageSource:
    """Batches of z in prior space: world images rendered on the fly, or a VAE-encoded image folder."""

    def __init__(self, cfg: CorrectiveTrainConfig, prior, device: torch.device):
        self.prior, self.device = prior, device
        self.pool: torch.Tensor | None = None
        if cfg.images is not None:
            self.pool = encode_folder(Path(cfg.images).expanduser(), prior)
            print(f"encoded {self.pool.shape[0]} images (with mirror images) from {cfg.images}", flush=True)
        elif prior.latent_channels != 3:
            raise SystemExit(
                f"error: the prior {prior.name} is a latent prior; world images do not represent its image "
                "distribution: pass --images DIR (a folder of photos)"
            )
        else:
            from engine.world.data import WorldConfig, WorldSampler

            self.world = WorldSampler(WorldConfig(size=prior.resolution))

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        if self.pool is not None:
            idx = torch.randint(self.pool.shape[0], (n,), generator=gen)
            return self.pool[idx].to(self.device)
        return self.prior.encode_images(self.world.sample_batch(n, gen).images.to(self.device))


@torch.no_grad()
def encode_folder(folder: Path, prior, chunk: int = 16) -> torch.Tensor:
    """Every image of ``folder`` and its mirror image, centre-cropped, resized and encoded (CPU float32)."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = []
    for i in range(0, len(files), chunk):
        rgbs = []
        for f in files[i : i + chunk]:
            im = Image.open(f).convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            im = im.crop((left, top, left + s, top + s)).resize((prior.resolution,) * 2, Image.LANCZOS)
            rgbs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0)
        rgb = torch.stack(rgbs)
        out.append(prior.encode_images(torch.cat([rgb, rgb.flip(-1)])).cpu())
    return torch.cat(out)


def triplets(prior, source: ImageSource, n: int, cfg: CorrectiveTrainConfig, x0_clip, gen, uncond):
    """(z, ẑ_t, t/T): z from the source, integer t with t/T ~ U(t_min, t_max), ẑ_t the unconditional
    one-step denoised estimate of z_t = √ᾱ_t z + √(1−ᾱ_t) ε (clamped as the guidance will)."""
    from engine.guidance.corrective import denoised_estimate

    T = prior.num_train_timesteps
    z = source.sample(n, gen)
    t = torch.randint(int(cfg.t_min * T), int(cfg.t_max * T), (n,), generator=gen).to(z.device)
    eps = torch.randn(z.shape, generator=gen).to(z.device)
    with torch.no_grad():
        z_t = prior.add_noise(z, eps, t)
        e = prior.predict_noise(z_t, t, uncond.expand(n, -1, -1))
        z_hat = denoised_estimate(prior, z_t, t, e, x0_clip)
    return z, z_hat, t.float() / T


def resolve_x0_clip(value: str, prior) -> float | None:
    v = value.strip().lower()
    if v == "auto":
        return 1.0 if prior.latent_channels == 3 else None
    if v == "none":
        return None
    try:
        return float(v)
    except ValueError:
        raise SystemExit(f"error: --x0-clip takes auto, none or a number, not {value!r}") from None


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: CorrectiveTrainConfig, command: str) -> dict:
    from engine.device import resolve_device
    from engine.guidance.corrective import CorrectiveConfig, renormalise, shipped_corrective_dir
    from engine.priors import load_prior, resolve_prior_spec

    try:
        device = resolve_device(cfg.device)
        prior = load_prior(resolve_prior_spec(cfg.prior), device)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(cfg.out).expanduser() if cfg.out else shipped_corrective_dir(prior)
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

    work = Path(cfg.work_dir)
    ckpt_path, log_path = work / "checkpoint.pt", work / "loss.jsonl"
    step, elapsed, running = 0, 0.0, None
    if ckpt_path.exists() and not cfg.fresh:
        state = torch.load(ckpt_path, weights_only=False, map_location=device)
        mine = {k: v for k, v in to_dict(cfg).items() if k not in RESUMABLE}
        theirs = {k: v for k, v in state["config"].items() if k not in RESUMABLE}
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise SystemExit(
                f"error: {ckpt_path} was made with other settings ({', '.join(diff)}); pass --fresh true "
                "to start over or another --work-dir"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"])
        step, elapsed, running = state["step"], state["elapsed"], state["running"]
        print(f"resumed from {ckpt_path} at step {step} ({elapsed / 60:.1f} min done)", flush=True)
    elif log_path.exists():
        log_path.unlink()  # a fresh run: the old curve is not this run's

    def lr_at(s: int) -> float:
        if s < cfg.warmup_steps:
            return cfg.lr * (s + 1) / cfg.warmup_steps
        frac = (s - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))

    def checkpoint() -> None:
        _atomic_save(
            {
                "config": to_dict(cfg),
                "step": step,
                "elapsed": elapsed,
                "running": running,
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "gen": gen.get_state(),
            },
            ckpt_path,
        )

    model.train()
    started = time.perf_counter() - elapsed
    work.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        while step < cfg.steps and (time.perf_counter() - started) < cfg.max_minutes * 60:
            z, z_hat, t = triplets(prior, source, cfg.batch_size, cfg, x0_clip, gen, uncond)
            # Eq. 10: the loss is taken after renormalising b̂ to ẑ_t's σ (per image and channel).
            loss = ((z_hat - renormalise(model(z, t), z_hat)) ** 2).mean()
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            elapsed = time.perf_counter() - started
            if step % cfg.log_every == 0 or step == cfg.steps:
                rec = {
                    "step": step,
                    "loss": value,
                    "loss_avg": running,
                    "lr": lr_at(step - 1),
                    "min": elapsed / 60,
                }
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(
                    f"step {step:5d}  loss {value:.5f}  avg {running:.5f}  {elapsed / 60:.1f} min", flush=True
                )
            if step % cfg.checkpoint_every == 0:
                checkpoint()
    checkpoint()
    return export(cfg, command, prior, model, source, out, step, elapsed, running, x0_clip, log_path)


@torch.no_grad()
def evaluate(prior, model, source: ImageSource, cfg: CorrectiveTrainConfig, x0_clip, uncond) -> list[dict]:
    """Per t bucket, on held-out images (their own seed): mean ‖b̂(z,t) − z‖ (b̂ renormalised as in guidance),
    mean ‖ẑ_t − z‖, and the eq. 10 loss of b̂ against the no-corrective baseline b̂ = z (i.e. L_proj's z)."""
    from engine.guidance.corrective import denoised_estimate, renormalise

    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    z = torch.cat([source.sample(min(16, cfg.eval_images - i), gen) for i in range(0, cfg.eval_images, 16)])
    n, T = z.shape[0], prior.num_train_timesteps
    rows = []
    for lo, hi in T_BUCKETS:
        t = (torch.randint(int(lo * T), int(hi * T), (n,), generator=gen)).to(z.device)
        eps = torch.randn(z.shape, generator=gen).to(z.device)
        z_t = prior.add_noise(z, eps, t)
        z_hat = denoised_estimate(
            prior, z_t, t, prior.predict_noise(z_t, t, uncond.expand(n, -1, -1)), x0_clip
        )
        b = renormalise(model(z, t.float() / T), z_hat)

        def norm(x: torch.Tensor) -> float:
            return float(x.flatten(1).norm(dim=1).mean())

        rows.append(
            {
                "t": f"{lo:.2f}–{hi:.2f}",
                "b_minus_z": norm(b - z),
                "zhat_minus_z": norm(z_hat - z),
                "loss_b": float(((z_hat - b) ** 2).mean()),
                "loss_identity": float(((z_hat - renormalise(z, z_hat)) ** 2).mean()),
            }
        )
    return rows


def loss_plot(log_path: Path, png: Path, size: tuple[int, int] = (560, 300)) -> None:
    """The training curve (running-average eq. 10 loss vs step, log scale) as a small PNG, drawn with PIL."""
    from PIL import Image, ImageDraw

    recs = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if len(recs) < 2:
        return
    w, h = size
    ml, mr, mt, mb = 64, 16, 24, 36
    xs = [r["step"] for r in recs]
    ys = [math.log10(max(r["loss_avg"], 1e-12)) for r in recs]
    y0, y1 = math.floor(min(ys) * 4) / 4, math.ceil(max(ys) * 4) / 4 + 1e-9
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            ml + (x - xs[0]) / max(xs[-1] - xs[0], 1) * (w - ml - mr),
            mt + (y1 - y) / (y1 - y0) * (h - mt - mb),
        )

    d.rectangle([ml, mt, w - mr, h - mb], outline="black")
    k = math.floor(y0)
    while k <= y1:
        for m in (1, 2, 5):
            v = math.log10(m) + k
            if y0 <= v <= y1:
                _, yy = px(xs[0], v)
                d.line([ml - 4, yy, ml, yy], fill="black")
                d.text((4, yy - 6), f"{m}e{k}", fill="black")
        k += 1
    for x in (xs[0], (xs[0] + xs[-1]) // 2, xs[-1]):
        xx, _ = px(x, y0)
        d.line([xx, h - mb, xx, h - mb + 4], fill="black")
        d.text((xx - 10, h - mb + 6), str(x), fill="black")
    d.line([px(x, y) for x, y in zip(xs, ys)], fill=(200, 40, 40), width=2)
    d.text((ml, 4), "eq. 10 loss (running average, log scale) vs step", fill="black")
    img.save(png)


def export(cfg, command, prior, model, source, out: Path, step, elapsed, running, x0_clip, log_path) -> dict:
    from engine.guidance.corrective import prior_fingerprint, save_corrective

    uncond = prior.encode_prompts([""])
    rows = evaluate(prior, model, source, cfg, x0_clip, uncond)
    nparams = sum(p.numel() for p in model.parameters())
    rel = lambda p: os.path.relpath(p, REPO) if Path(p).resolve().is_relative_to(REPO) else str(p)  # noqa: E731
    training = {
        "command": command,
        "seed": cfg.seed,
        "steps": step,
        "wall_minutes": round(elapsed / 60, 1),
        "final_loss_avg": running,
        "config": to_dict(cfg) | {"work_dir": rel(cfg.work_dir), "out": rel(out)},
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "device": str(prior.device),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    prior_info = {"name": prior.name, "fingerprint": prior_fingerprint(prior)}
    if prior.name.startswith(("pixel:", "sd:")) and Path(prior.name.split(":", 1)[1]).is_dir():
        prior_info["name"] = prior.name.split(":", 1)[0] + ":" + rel(prior.name.split(":", 1)[1])
    save_corrective(model, out, {"prior": prior_info, "training": training, "eval": rows})
    loss_plot(log_path, out / "loss.png")
    size_kb = (out / "model.safetensors").stat().st_size / 1024
    (out / "MODEL_CARD.md").write_text(model_card(cfg, model, prior_info, training, rows, nparams, size_kb))
    print(
        f"wrote {out} after {step} steps, {elapsed / 60:.1f} min, final loss (avg) {running:.5f}", flush=True
    )
    return training | {"eval": rows}


def model_card(cfg, model, prior_info, training, rows, nparams, size_kb) -> str:
    c = model.cfg
    widths = [c.base_filters * 2**i for i in range(c.levels + 1)]
    data = (
        f"images from `{cfg.images}` (centre-cropped, resized, VAE-encoded, plus mirror images)"
        if cfg.images
        else "procedural world images (`engine.world.WorldSampler`, default `WorldConfig` at the prior's "
        "resolution: the built-in prior's own training distribution), rendered on the fly, z = 2·rgb − 1"
    )
    table = "\n".join(
        f"| {r['t']} | {r['b_minus_z']:.3f} | {r['zhat_minus_z']:.3f} | {r['loss_b']:.5f} | {r['loss_identity']:.5f} |"
        for r in rows
    )
    return f"""# Learned manifold corrective b̂_ψ for `{prior_info["name"]}`

The corrective of LMC-SDS (Kolotouros et al. 2024, §4): a small U-Net imitating the t-dependent blur of
the prior's one-step denoised estimate ẑ_t on on-manifold images, so that `--method lmc-sds` compares ẑ_t
with b̂(z, t) instead of z (eq. 9). Code: `engine/guidance/corrective.py`; trained by
`scripts/train_corrective.py`. It models *these* prior weights (fingerprint `{prior_info["fingerprint"]}`,
sha256 of the UNet weight file); the engine warns when the prior's weights differ.

## Model

- U-Net, {c.levels} encoder levels of two 3×3 Conv/ReLU + 2×2 MaxPool, filters {widths[:-1]}, bottleneck
  {widths[-1]}, decoder with transposed-conv upsampling and skip connections, 1×1 output conv with
  `{c.out_activation}`; t/T enters as a {2 * c.time_frequencies}-dim frequency encoding concatenated to every pixel.
- {nparams:,} parameters, `model.safetensors` {size_kb:.0f} kB (fp16; loaded as fp32).
- Output renormalised as in eq. 10: σ(ẑ_t)/σ(b̂)·(b̂ − μ(b̂)) + μ(b̂), per image and per channel.
- ẑ_t clamp: {c.x0_clip} (as the prior's sampler clips x₀).

## Training

- Data: {data}; t/T ~ U({cfg.t_min}, {cfg.t_max}); ẑ_t from the prior's unconditional ε-prediction of
  z_t = √ᾱ_t z + √(1−ᾱ_t) ε. Loss: eq. 10 only (mean squared error per element).
- Command: `{training["command"]}`
- Seed {training["seed"]}; {training["steps"]} steps of batch {cfg.batch_size}; Adam, lr {cfg.lr} (warm-up
  {cfg.warmup_steps}, cosine to 10% over {cfg.steps} steps); wall time {training["wall_minutes"]} min on
  {training["machine"]["device"]} ({training["machine"]["cpu_threads"]} torch threads, torch {training["machine"]["torch"]}).
- Final loss (running average): {training["final_loss_avg"]:.5f}

![training loss](loss.png)

The curve is noisy and falls little: each batch's loss is dominated by the irreducible spread of ẑ_t at
large t (there even the conditional mean of ẑ_t scores ~0.1), and the residual b̂ starts at the identity,
whose loss is already low at small t. Whether b̂ learned is the last two columns below: it must beat
b̂ = z in every t bucket.

## Check: b̂ blurs more as t grows

{cfg.eval_images} held-out images, one random t per image in each bucket. ‖·‖ is the L2 norm per image in
prior space ({c.channels}×h×w), averaged; b̂ is renormalised with that image's ẑ_t, as in guidance. The
last two columns are the eq. 10 loss of b̂ and of the no-corrective baseline b̂ = z (what SDS's L_proj
compares ẑ_t with).

| t/T | mean ‖b̂(z,t) − z‖ | mean ‖ẑ_t − z‖ | eq. 10 loss, b̂ | eq. 10 loss, b̂ = z |
|---|---|---|---|---|
{table}

## Reproduce

```bash
{training["command"]}
```

The run checkpoints to `{training["config"]["work_dir"]}` and resumes from there automatically (`--fresh true`
starts over). For Stable Diffusion on a GPU, see the docstring of `scripts/train_corrective.py`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python scripts/train_corrective.py", description=__doc__.split("\n\n")[0])
    paths = add_config_flags(parser, CorrectiveTrainConfig, skip=set())
    args = parser.parse_args(argv)
    cfg = CorrectiveTrainConfig()
    for path, value in overrides_from(args, paths).items():
        setattr(cfg, path, value)
    if not (0.0 <= cfg.t_min < cfg.t_max <= 1.0):
        parser.error(f"need 0 <= t-min < t-max <= 1 (got {cfg.t_min}, {cfg.t_max})")
    for name in ("steps", "batch_size", "eval_images", "checkpoint_every", "log_every"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    command = "python scripts/train_corrective.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    train(cfg, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
