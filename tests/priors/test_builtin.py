"""The shipped built-in prior and judge load offline from the repo and do their jobs."""

import pytest
import torch

from engine.priors import BUILTIN_PRIOR_DIR, load_prior, resolve_prior_spec
from engine.world.data import vocabulary


@pytest.fixture(scope="module")
def builtin():
    return load_prior(resolve_prior_spec("builtin"), torch.device("cpu"))


def test_builtin_is_the_shipped_folder_and_small(builtin):
    assert builtin.name == f"pixel:{BUILTIN_PRIOR_DIR}"
    assert builtin.resolution == 32 and builtin.latent_channels == 3
    size = sum(p.stat().st_size for p in BUILTIN_PRIOR_DIR.rglob("*") if p.is_file())
    assert size < 30e6
    params = sum(p.numel() for p in builtin.unet.parameters())
    assert params <= 10e6


def test_builtin_knows_the_world_vocabulary_and_refuses_other_words(builtin):
    for word in vocabulary():
        builtin.vocabulary_check(f"a {word}")
    builtin.vocabulary_check("an orange torus, side view")
    with pytest.raises(ValueError) as err:
        builtin.vocabulary_check("a red dragon")
    msg = str(err.value)
    assert "'dragon'" in msg and "'cube'" in msg and "Stable Diffusion" in msg


def test_a_sample_of_a_red_cube_is_judged_a_red_cube(builtin):
    from engine.judge import judge_images, load_judge
    from engine.priors.sample import sample_images

    imgs = sample_images(
        builtin, ["a red cube"] * 2, steps=25, guidance_scale=5.0, generator=torch.Generator().manual_seed(0)
    )
    verdicts = judge_images(load_judge(), imgs)
    assert all(v.colour == "red" for v in verdicts), verdicts
    assert any(v.cls == "cube" for v in verdicts), verdicts
