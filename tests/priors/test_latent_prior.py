"""The latent prior's training script writes a Stable-Diffusion-layout folder the engine loads as a prior,
resumes where it stopped, and the word-level tokenizer keeps its vocabulary check through the SD adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.guidance import PromptEmbeddings, SDSConfig
from engine.priors import StableDiffusionConfig, resolve_prior_spec
from scripts.train_latent_prior import LatentPriorTrainConfig, main

TINY = ["--resolution", "32", "--vae-channels", "8,8,8", "--unet-channels", "8,16,16", "--text-dim", "16"]
TINY += ["--batch-size", "2", "--vae-batch-size", "2", "--checkpoint-every", "1", "--log-every", "1"]
TINY += ["--latent-pool", "6"]


@pytest.fixture(scope="module")
def latent_prior(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("latent_prior")
    out, work = root / "prior", root / "work"
    common = [*TINY, "--vae-steps", "2", "--out", str(out), "--work-dir", str(work)]
    assert main([*common, "--steps", "3"]) == 0  # the VAE stage, the switch, one UNet step, an export
    assert main([*common, "--steps", "4"]) == 0  # resumes at step 3 (steps may change on resume)
    stages = [json.loads(line)["stage"] for line in (work / "loss.jsonl").read_text().splitlines()]
    assert stages == ["vae", "vae", "unet", "unet"]  # one step counter across both stages, nothing redone
    return out


def test_the_folder_loads_as_a_stable_diffusion_prior(latent_prior: Path):
    info = json.loads((latent_prior / "training.json").read_text())
    assert info["steps"] == 4 and info["scaling_factor"] > 0
    cfg = resolve_prior_spec(str(latent_prior))
    assert isinstance(cfg, StableDiffusionConfig)
    prior = cfg.setup("cpu")
    channels = LatentPriorTrainConfig().latent_channels
    assert (prior.resolution, prior.latent_channels, prior.latent_resolution) == (32, channels, 8)
    with pytest.raises(ValueError, match="unknown word"):
        prior.vocabulary_check("a red dragon")
    text = PromptEmbeddings(cond=prior.encode_prompts(["a red cube"]), uncond=prior.encode_prompts([""]))
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    out = SDSConfig(guidance_scale=10.0).setup(prior)(images, text, 0, 10, torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0  # through the trained VAE
