"""What a corrective run leaves beside its weights: the per-t evaluation, the model card and the loss plot."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from engine.configbase import to_dict
from scripts.corrective.config import REPO
from scripts.training_common import machine_info

if TYPE_CHECKING:
    from scripts.corrective.config import CorrectiveTrainConfig
    from scripts.corrective.data import ImageSource
    from scripts.training_common import TrainingRun

T_BUCKETS = ((0.02, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 0.98))
"""t/T ranges of the evaluation table."""


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


def export(cfg, command, prior, model, source, out: Path, run: TrainingRun, x0_clip) -> dict:
    """Evaluate the model and write it to ``out`` with its config, model card and loss plot."""
    from engine.guidance.corrective import save_corrective

    uncond = prior.encode_prompts([""])
    rows = evaluate(prior, model, source, cfg, x0_clip, uncond)
    nparams = sum(p.numel() for p in model.parameters())
    rel = lambda p: os.path.relpath(p, REPO) if Path(p).resolve().is_relative_to(REPO) else str(p)  # noqa: E731
    training = {
        "command": command,
        "seed": cfg.seed,
        "steps": run.step,
        "wall_minutes": round(run.elapsed / 60, 1),
        "final_loss_avg": run.running,
        "config": to_dict(cfg) | {"work_dir": rel(cfg.work_dir), "out": rel(out)},
        "machine": machine_info(device=str(prior.device)),
    }
    # Provenance: the weights' fingerprint is what a later run checks; the name (with a repo-relative
    # folder) is for people.
    prior_info = {"name": prior.name, "fingerprint": prior.fingerprint}
    if prior.folder is not None:
        prior_info["name"] = prior.name.split(":", 1)[0] + ":" + rel(prior.folder)
    save_corrective(model, out, {"prior": prior_info, "training": training, "eval": rows})
    loss_plot(run.log_path, out / "loss.png")
    size_kb = (out / "model.safetensors").stat().st_size / 1024
    (out / "MODEL_CARD.md").write_text(model_card(cfg, model, prior_info, training, rows, nparams, size_kb))
    print(
        f"wrote {out} after {run.step} steps, {run.elapsed / 60:.1f} min, final loss (avg) {run.running:.5f}",
        flush=True,
    )
    return training | {"eval": rows}


def model_card(cfg, model, prior_info, training, rows, nparams, size_kb) -> str:
    c = model.cfg
    widths = [c.base_filters * 2**i for i in range(c.levels + 1)]
    data = (
        f"images from `{cfg.images}` (centre-cropped, resized, VAE-encoded, plus mirror images)"
        if cfg.images
        else "procedural world images (`engine.world.WorldSampler`, default `WorldConfig` at the prior's "
        "resolution: the built-in prior's own training distribution), rendered on the fly, "
        + (
            "z = 2·rgb − 1"
            if model.cfg.channels == 3
            else "z = the prior's VAE encoding (posterior mean × scaling factor)"
        )
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
