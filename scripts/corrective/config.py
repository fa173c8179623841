"""The settings of a corrective training run (the flags of ``scripts/train_corrective.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[2]


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
