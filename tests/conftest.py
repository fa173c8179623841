"""Shared fixtures: tiny random diffusion priors built once per test session (offline, ~1 s)."""

import os

# Tests never reach the model hub: fail fast instead of waiting on network timeouts. Set before
# huggingface_hub is imported (it reads the flag once).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_pixel_prior_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random pixel prior folder (16 px, vocabulary ``tests.priors.tiny.TINY_VOCAB``)."""
    from tests.priors.tiny import build_tiny_pixel_prior

    return build_tiny_pixel_prior(tmp_path_factory.mktemp("tiny_pixel_prior"))


@pytest.fixture(scope="session")
def tiny_sd_prior_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Stable-Diffusion-layout folder (64 px images, 4×8×8 latents, open vocabulary)."""
    from tests.priors.tiny import build_tiny_sd_prior

    return build_tiny_sd_prior(tmp_path_factory.mktemp("tiny_sd_prior"))
