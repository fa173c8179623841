"""SDS against an independent computation of DreamFusion's gradient (eq. 3 of the LMC-SDS paper)."""

import pytest
import torch

from engine.guidance import PromptEmbeddings, SDSConfig, TimestepConfig
from engine.priors.pixel import PixelPriorConfig


@pytest.fixture(scope="module")
def prior(tiny_pixel_prior_dir):
    return PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")


def text_for(prior, prompts):
    cond = prior.encode_prompts(prompts)
    return PromptEmbeddings(cond=cond, uncond=prior.encode_prompts([""] * len(prompts)))


@pytest.mark.parametrize("weighting", ["sds", "uniform"])
@pytest.mark.parametrize("scale", [1.0, 7.5, 100.0])
def test_sds_gradient_equals_formula(prior, weighting, scale):
    torch.manual_seed(0)
    size = prior.resolution
    images = torch.rand(2, 3, size, size, requires_grad=True)
    text = text_for(prior, ["a red cube", "a blue sphere, front view"])
    guidance = SDSConfig(guidance_scale=scale, weighting=weighting).setup(prior)
    out = guidance(images, text, step=0, total_steps=10, generator=torch.Generator().manual_seed(7))
    out.loss.backward()

    # Independent: same draws (timesteps first, then ε), the UNet called once per branch, no batching.
    g = torch.Generator().manual_seed(7)
    T = prior.num_train_timesteps
    t = torch.randint(int(0.02 * T), int(0.98 * T), (2,), generator=g)
    eps = torch.randn(2, 3, size, size, generator=g)
    assert torch.equal(out.t, t)
    ab = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    z = 2 * images.detach() - 1
    z_t = ab.sqrt() * z + (1 - ab).sqrt() * eps
    with torch.no_grad():
        e_u = prior.unet(z_t, t, encoder_hidden_states=text.uncond).sample
        e_c = prior.unet(z_t, t, encoder_hidden_states=text.cond).sample
    w = (1 - ab) if weighting == "sds" else torch.ones_like(ab)
    grad_z = w * (e_u + scale * (e_c - e_u) - eps)
    expected = 2 * grad_z / 2  # dz/dimage = 2; the surrogate loss averages over the batch of 2
    # 1e-5 relative to the gradient's scale: at ω = 100 the CFG difference amplifies float32 round-off
    # of batched vs unbatched UNet calls (~1e-7) by 100.
    err = (images.grad - expected).abs().max() / expected.abs().max().clamp(min=1.0)
    assert err < 1e-5, float(err)


def test_sds_resizes_renders_to_the_prior_resolution(prior):
    images = torch.rand(1, 3, 2 * prior.resolution, 2 * prior.resolution, requires_grad=True)
    out = SDSConfig().setup(prior)(
        images, text_for(prior, ["a cube"]), 0, 1, torch.Generator().manual_seed(0)
    )
    out.loss.backward()
    assert images.grad.shape == images.shape and images.grad.abs().sum() > 0


def test_timestep_annealing():
    ts = TimestepConfig(t_min=0.02, t_max=0.98, anneal="step", t_max_end=0.5, anneal_at=0.5)
    g = torch.Generator().manual_seed(0)
    late = ts.sample(1000, 1000, step=90, total=100, generator=g)
    early = ts.sample(1000, 1000, step=10, total=100, generator=g)
    assert late.max() < 500 and early.max() > 900 and early.min() >= 20
    lin = TimestepConfig(anneal="linear", t_max_end=0.5)
    assert lin.t_max_at(50, 100) == pytest.approx(0.74)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"t_min": 0.5, "t_max": 0.4}, "t_min must be below t_max"),
        ({"anneal": "linear", "t_max_end": 0.01}, "t_max_end"),
    ],
)
def test_bad_timestep_settings(kw, msg):
    with pytest.raises(ValueError, match=msg):
        TimestepConfig(**kw).validate()
