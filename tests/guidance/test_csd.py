"""CSD against an independent computation of the LMC-SDS paper's prompt term (eq. 6b), and the split of
SDS into CSD's term plus the projection term (eq. 6a, 6c)."""

import pytest
import torch

from engine.guidance import METHODS, PromptEmbeddings, SDSConfig
from engine.priors.pixel import PixelPriorConfig


@pytest.fixture(scope="module")
def prior(tiny_pixel_prior_dir):
    return PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")


def text_for(prior, prompts):
    return PromptEmbeddings(
        cond=prior.encode_prompts(prompts), uncond=prior.encode_prompts([""] * len(prompts))
    )


def image_grad(guidance, prior, seed=7):
    torch.manual_seed(0)
    size = prior.resolution
    images = torch.rand(2, 3, size, size, requires_grad=True)
    out = guidance(
        images,
        text_for(prior, ["a red cube", "a blue sphere, front view"]),
        0,
        10,
        torch.Generator().manual_seed(seed),
    )
    out.loss.backward()
    return images, out, images.grad


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_csd_gradient_is_the_classifier_term_of_eq_6b(prior, scale):
    csd = METHODS["csd"](guidance_scale=scale).setup(prior)
    images, out, grad = image_grad(csd, prior)

    # Independent: the same draws (timesteps, then ε), one UNet call per branch.
    g = torch.Generator().manual_seed(7)
    T = prior.num_train_timesteps
    t = torch.randint(int(0.02 * T), int(0.98 * T), (2,), generator=g)
    eps = torch.randn(2, 3, prior.resolution, prior.resolution, generator=g)
    assert torch.equal(out.t, t)
    ab = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    z_t = ab.sqrt() * (2 * images.detach() - 1) + (1 - ab).sqrt() * eps
    text = text_for(prior, ["a red cube", "a blue sphere, front view"])
    with torch.no_grad():
        e_u = prior.unet(z_t, t, encoder_hidden_states=text.uncond).sample
        e_c = prior.unet(z_t, t, encoder_hidden_states=text.cond).sample
    expected = 2 * ((1 - ab) * scale * (e_c - e_u)) / 2  # dz/dimage = 2, the surrogate averages over 2
    err = (grad - expected).abs().max() / expected.abs().max()
    assert err < 1e-5, float(err)


def test_sds_is_csd_plus_the_projection_term(prior):
    """Eq. 6a: at the same ω and the same draws, SDS − CSD = w(t)·(ε_φ(z_t, t) − ε), the term CSD drops."""
    scale = 10.0
    _, out, g_sds = image_grad(SDSConfig(guidance_scale=scale).setup(prior), prior)
    images, _, g_csd = image_grad(METHODS["csd"](guidance_scale=scale).setup(prior), prior)
    g = torch.Generator().manual_seed(7)
    T = prior.num_train_timesteps
    torch.randint(int(0.02 * T), int(0.98 * T), (2,), generator=g)
    eps = torch.randn(2, 3, prior.resolution, prior.resolution, generator=g)
    ab = prior.alphas_cumprod[out.t].reshape(-1, 1, 1, 1)
    z_t = ab.sqrt() * (2 * images.detach() - 1) + (1 - ab).sqrt() * eps
    with torch.no_grad():
        e_u = prior.unet(z_t, out.t, encoder_hidden_states=prior.encode_prompts(["", ""])).sample
    projection = (1 - ab) * (e_u - eps)
    err = (g_sds - g_csd - projection).abs().max() / projection.abs().max()
    assert err < 1e-4, float(err)


def test_csd_needs_a_positive_scale():
    with pytest.raises(ValueError, match="guidance_scale must be > 0"):
        METHODS["csd"](guidance_scale=0.0).validate()
