"""The priors shipped with the engine (every entry of ``SHIPPED_PRIORS``) load offline from the repo and do
their jobs; the default one is the 64 px latent prior, loaded through the Stable Diffusion adapter."""

import pytest
import torch

from engine.priors import SHIPPED_PRIORS, load_prior, resolve_prior_spec
from engine.world.data import vocabulary

NATIVE = {"builtin": (64, 8, 16), "builtin-pixel32": (32, 3, 32)}
"""name → (image resolution, latent channels, latent resolution)."""


@pytest.fixture(scope="module", params=list(SHIPPED_PRIORS))
def shipped(request):
    return request.param, load_prior(resolve_prior_spec(request.param), torch.device("cpu"))


def test_shipped_prior_is_its_folder_and_small(shipped):
    name, prior = shipped
    folder = SHIPPED_PRIORS[name].folder
    assert prior.folder == folder and set(NATIVE) == set(SHIPPED_PRIORS)
    assert (prior.resolution, prior.latent_channels, prior.latent_resolution) == NATIVE[name]
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 30e6, f"{name}: {size / 1e6:.1f} MB"
    assert sum(p.numel() for p in prior.unet.parameters()) <= 10e6
    assert (folder / "README.md").is_file() and (folder / "sample_grid.png").is_file()  # its model card


def test_the_default_prior_runs_through_the_stable_diffusion_adapter():
    """The default is a latent prior in Stable Diffusion's layout, so every CPU run and CI exercise the SD path
    (VAE encode with its scaling factor, the UNet on latents) with trained weights, not random ones."""
    from engine.config import RunConfig
    from engine.priors import StableDiffusionConfig, StableDiffusionPrior

    default = RunConfig.__dataclass_fields__["prior"].default
    assert default == "builtin" and isinstance(resolve_prior_spec(default), StableDiffusionConfig)
    prior = load_prior(resolve_prior_spec(default), torch.device("cpu"))
    assert isinstance(prior, StableDiffusionPrior) and prior.resolution == 64


def test_shipped_prior_knows_the_world_vocabulary_and_refuses_other_words(shipped):
    _, prior = shipped
    for word in vocabulary():
        prior.vocabulary_check(f"a {word}")
    prior.vocabulary_check("an orange torus, side view")
    with pytest.raises(ValueError) as err:
        prior.vocabulary_check("a red dragon")
    msg = str(err.value)
    assert "'dragon'" in msg and "'cube'" in msg and "Stable Diffusion" in msg


def test_a_sample_of_a_red_cube_is_judged_a_red_cube(shipped):
    from engine.judge import judge_images, load_judge
    from engine.priors.sample import sample_images

    _, prior = shipped
    imgs = sample_images(
        prior, ["a red cube"] * 2, steps=25, guidance_scale=5.0, generator=torch.Generator().manual_seed(0)
    )
    verdicts = judge_images(load_judge(), imgs)
    assert all(v.colour == "red" for v in verdicts), verdicts
    assert any(v.cls == "cube" for v in verdicts), verdicts
