"""LMC-SDS against an independent computation of the paper's gradient (eq. 6b, 9, 10, scaled by 1/ω), its
noise handling (fixed ε in L_cond only), the missing-corrective error, and the shipped corrective."""

import pytest
import torch

from engine.guidance import METHODS, LMCSDSConfig, PromptEmbeddings
from engine.guidance.corrective import (
    CorrectiveConfig,
    denoised_estimate,
    find_corrective,
    load_corrective,
    renormalise,
    save_corrective,
)
from engine.priors.pixel import PixelPriorConfig
from engine.priors.stable_diffusion import StableDiffusionConfig


def tiny_corrective(folder, channels=3, activation="tanh", x0_clip=1.0, seed=0):
    torch.manual_seed(seed)
    cfg = CorrectiveConfig(
        channels=channels,
        levels=2,
        base_filters=4,
        time_frequencies=2,
        out_activation=activation,
        x0_clip=x0_clip,
    )
    model = cfg.setup()
    with torch.no_grad():  # a visible t dependence and output scale for a random net
        for p in model.parameters():
            p.mul_(3.0)
        model.head.weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))  # zero-initialised
    return save_corrective(model, folder)


@pytest.fixture(scope="module")
def pixel_prior(tiny_pixel_prior_dir):
    return PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")


@pytest.fixture(scope="module")
def sd_prior(tiny_sd_prior_dir):
    return StableDiffusionConfig(model=str(tiny_sd_prior_dir)).setup("cpu")


@pytest.fixture(scope="module")
def pixel_corrective(tmp_path_factory):
    return tiny_corrective(tmp_path_factory.mktemp("corr_pixel"))


@pytest.fixture(scope="module")
def sd_corrective(tmp_path_factory):
    return tiny_corrective(tmp_path_factory.mktemp("corr_sd"), channels=4, activation="none", x0_clip=None)


def text_for(prior, prompts):
    return PromptEmbeddings(
        cond=prior.encode_prompts(prompts), uncond=prior.encode_prompts([""] * len(prompts))
    )


def expected_grad_z(prior, folder, z, text, scale, fixed_seed, gen_seed, weighting="sds"):
    """The paper's gradient w.r.t. z, computed independently: UNet called per branch, eq. 10 by hand;
    w(t) = 1 − ᾱ_t (DreamFusion's, the text-to-3D default) or 1 (``weighting="uniform"``).

    Draw order (lmc.py docstring): t, then ε when not fixed (shared by both terms), else ε' of L_lmc.
    """
    g = torch.Generator().manual_seed(gen_seed)
    B, T = z.shape[0], prior.num_train_timesteps
    t = torch.randint(int(0.02 * T), int(0.98 * T), (B,), generator=g)
    if fixed_seed is None:
        eps = torch.randn(z.shape, generator=g)
        eps_lmc = eps
    else:
        eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(fixed_seed))
        eps_lmc = torch.randn(z.shape, generator=g)
    ab = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    z_t = ab.sqrt() * z + (1 - ab).sqrt() * eps
    z_t2 = ab.sqrt() * z + (1 - ab).sqrt() * eps_lmc
    with torch.no_grad():
        e_u = prior.unet(z_t, t, encoder_hidden_states=text.uncond).sample
        e_c = prior.unet(z_t, t, encoder_hidden_states=text.cond).sample
        e_u2 = prior.unet(z_t2, t, encoder_hidden_states=text.uncond).sample
        corr = load_corrective(folder)
        z_hat = (z_t2 - (1 - ab).sqrt() * e_u2) / ab.sqrt()
        if corr.cfg.x0_clip is not None:
            z_hat = z_hat.clamp(-corr.cfg.x0_clip, corr.cfg.x0_clip)
        raw = corr(z, t.float() / T)
    # eq. 10 normalisation, per image and channel: σ(ẑ_t)/σ(b̂)·(b̂ − μ(b̂)) + μ(b̂)
    mu = raw.mean(dim=(2, 3), keepdim=True)
    sd = ((raw - mu) ** 2).mean(dim=(2, 3), keepdim=True).sqrt()
    sd_hat = ((z_hat - z_hat.mean(dim=(2, 3), keepdim=True)) ** 2).mean(dim=(2, 3), keepdim=True).sqrt()
    b_hat = sd_hat / sd * (raw - mu) + mu
    w = (1 - ab) if weighting == "sds" else torch.ones_like(ab)
    grad = w * (scale * (e_c - e_u) + (b_hat - z_hat)) / scale  # w(t) · (L_cond + L_lmc) / ω
    return grad, t


def relative_error(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1.0))


@pytest.mark.parametrize("weighting", ["sds", "uniform"])
@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_lmc_gradient_equals_formula_pixel_prior(pixel_prior, pixel_corrective, fixed, scale, weighting):
    torch.manual_seed(0)
    size = pixel_prior.resolution
    images = torch.rand(2, 3, size, size, requires_grad=True)
    text = text_for(pixel_prior, ["a red cube", "a blue sphere, front view"])
    cfg = LMCSDSConfig(
        guidance_scale=scale, fixed_noise=fixed, corrective=str(pixel_corrective), weighting=weighting
    )
    out = cfg.setup(pixel_prior, seed=3)(images, text, 0, 10, torch.Generator().manual_seed(7))
    out.loss.backward()

    z = 2 * images.detach() - 1
    fixed_seed = 3 if fixed else None
    grad, t = expected_grad_z(pixel_prior, pixel_corrective, z, text, scale, fixed_seed, 7, weighting)
    assert torch.equal(out.t, t)
    expected = 2 * grad / 2  # dz/dimage = 2; the surrogate averages over the batch of 2
    assert relative_error(images.grad, expected) < 1e-5
    assert out.extras["lmc_norm"] > 0 and out.extras["cond_norm"] > 0


def test_lmc_gradient_equals_formula_sd_latent_prior(sd_prior, sd_corrective):
    torch.manual_seed(0)
    size = sd_prior.resolution
    images = torch.rand(2, 3, size, size, requires_grad=True)
    text = text_for(sd_prior, ["a red cube", "a mug"])
    cfg = LMCSDSConfig(guidance_scale=8.0, corrective=str(sd_corrective))
    out = cfg.setup(sd_prior, seed=1)(images, text, 0, 10, torch.Generator().manual_seed(11))
    out.loss.backward()

    x = images.detach().clone().requires_grad_(True)
    z = sd_prior.encode_images(x)
    grad, _ = expected_grad_z(sd_prior, sd_corrective, z.detach(), text, 8.0, 1, 11)
    (expected,) = torch.autograd.grad(z, x, grad / 2)  # through the VAE encoder, as the surrogate does
    assert relative_error(images.grad, expected) < 1e-5


def test_renormalise_matches_target_std_and_keeps_own_mean():
    """Eq. 10 as documented: per image and channel, std of the target, mean of b itself."""
    g = torch.Generator().manual_seed(0)
    b = torch.randn(3, 4, 8, 8, generator=g) * torch.tensor([0.1, 1.0, 3.0, 0.5]).view(1, 4, 1, 1) + 0.7
    target = torch.randn(3, 4, 8, 8, generator=g) * torch.tensor([2.0, 0.2, 1.0, 0.05]).view(1, 4, 1, 1) - 0.3
    out = renormalise(b, target)
    std = lambda x: x.std(dim=(2, 3), unbiased=False)  # noqa: E731
    assert torch.allclose(std(out), std(target), rtol=1e-5)
    assert torch.allclose(out.mean(dim=(2, 3)), b.mean(dim=(2, 3)), atol=1e-6)
    # Per channel, not per image: a channel's statistics do not leak into another's.
    assert not torch.allclose(std(out)[:, 0], std(out)[:, 1])
    # A constant channel stays finite (its mean, σ floored).
    flat = torch.full((1, 3, 4, 4), 0.25)
    assert torch.allclose(renormalise(flat, torch.randn(1, 3, 4, 4)), flat)


def test_lmc_resamples_noise_while_cond_noise_is_fixed_per_seed(pixel_prior, pixel_corrective, monkeypatch):
    """Fixed-ε seeds (§4): ε of L_cond fixed per run seed (and different across seeds); ε' of L_lmc fresh."""
    calls = []
    real = pixel_prior.add_noise
    monkeypatch.setattr(
        pixel_prior, "add_noise", lambda z, eps, t: (calls.append(eps.clone()), real(z, eps, t))[1]
    )
    images = torch.rand(1, 3, 16, 16)
    text = text_for(pixel_prior, ["a red cube"])

    def noises(seed, fixed=True, n=2):
        guidance = LMCSDSConfig(corrective=str(pixel_corrective), fixed_noise=fixed).setup(
            pixel_prior, seed=seed
        )
        gen = torch.Generator().manual_seed(0)
        out = []
        for step in range(n):
            calls.clear()
            guidance(images, text, step, 10, gen)
            out.append(list(calls))
        return out

    (c1, l1), (c2, l2) = noises(seed=0)
    assert torch.equal(c1, c2)  # the prompt term's ε is fixed
    assert not torch.allclose(l1, l2)  # the corrective term's ε' is fresh each call
    assert not torch.allclose(c1, l1)
    (c_other, _), _ = noises(seed=1)
    assert not torch.allclose(c1, c_other)  # another seed, another fixed ε
    (c_again, _), _ = noises(seed=0)
    assert torch.equal(c1, c_again)
    (u1,), (u2,) = noises(seed=0, fixed=False)  # without fixed ε: one fresh ε per step, shared by both terms
    assert not torch.allclose(u1, u2)


def test_clear_error_when_the_prior_has_no_corrective(pixel_prior, tmp_path):
    with pytest.raises(
        ValueError, match=r"needs a learned manifold corrective.*none exists.*train_corrective\.py"
    ) as err:
        LMCSDSConfig().setup(pixel_prior)
    assert pixel_prior.name in str(err.value) and "none exists" in str(err.value)
    with pytest.raises(ValueError, match="no manifold corrective at"):
        LMCSDSConfig(corrective=str(tmp_path / "nowhere")).setup(pixel_prior)


def test_missing_corrective_fails_the_cli_before_training(tiny_pixel_prior_dir, tmp_path, capsys):
    from engine.generate import run

    code = run(
        [
            "a red cube",
            "--method",
            "lmc-sds",
            "--prior",
            str(tiny_pixel_prior_dir),
            "--out",
            str(tmp_path / "a.glb"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "train_corrective.py" in err and "none exists" in err
    assert not (tmp_path / "a_run" / "checkpoint.pt").exists()


def test_a_prior_folder_ships_its_corrective(tmp_path):
    from tests.priors.tiny import build_tiny_pixel_prior

    folder = build_tiny_pixel_prior(tmp_path / "prior")
    tiny_corrective(folder / "corrective")
    prior = PixelPriorConfig(str(folder)).setup("cpu")
    assert find_corrective(prior.folder, prior.name) == folder / "corrective"
    assert "lmc-sds" in METHODS
    guidance = METHODS["lmc-sds"]().setup(prior)
    assert guidance.corrective_dir == folder / "corrective"


def test_a_corrective_for_another_prior_space_is_refused(sd_prior, pixel_corrective):
    with pytest.raises(ValueError, match="takes 3-channel z"):
        LMCSDSConfig(corrective=str(pixel_corrective)).setup(sd_prior)


@pytest.mark.parametrize("name", ["builtin", "builtin-pixel32"])
def test_shipped_corrective_blurs_more_as_t_grows(name):
    """Each shipped prior's b̂: ‖b̂(z, t) − z‖ (renormalised as in guidance) grows with t on world images."""
    from engine.priors import SHIPPED_PRIORS, load_prior, resolve_prior_spec
    from engine.world.data import WorldConfig, WorldSampler

    assert set(SHIPPED_PRIORS) == {"builtin", "builtin-pixel32"}  # a new shipped prior is tested here too
    prior = load_prior(resolve_prior_spec(name), "cpu")
    corr = load_corrective(find_corrective(prior.folder, prior.name))
    gen = torch.Generator().manual_seed(123)
    z = prior.encode_images(WorldSampler(WorldConfig(size=prior.resolution)).sample_batch(8, gen).images)
    uncond = prior.encode_prompts([""]).expand(z.shape[0], -1, -1)
    T, dist = prior.num_train_timesteps, []
    with torch.no_grad():
        for frac in (0.1, 0.3, 0.5, 0.7, 0.9):
            t = torch.full((z.shape[0],), int(frac * T))
            d = 0.0
            for _ in range(2):
                z_t = prior.add_noise(z, torch.randn(z.shape, generator=gen), t)
                z_hat = denoised_estimate(
                    prior, z_t, t, prior.predict_noise(z_t, t, uncond), corr.cfg.x0_clip
                )
                d += float((renormalise(corr(z, t.float() / T), z_hat) - z).flatten(1).norm(dim=1).mean()) / 2
            dist.append(d)
    assert all(a < b for a, b in zip(dist, dist[1:])), (name, dist)


def _train_script():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "train_corrective.py"
    spec = importlib.util.spec_from_file_location("train_corrective", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_train_corrective_smoke_and_exact_resume(tiny_pixel_prior_dir, tmp_path, capsys):
    """2 steps, then 2 more resumed, give the same weights as 4 steps in one go; the card and files exist."""
    script = _train_script()
    common = [
        "--prior",
        str(tiny_pixel_prior_dir),
        "--levels",
        "2",
        "--base-filters",
        "4",
        "--batch-size",
        "4",
    ]
    common += ["--eval-images", "4", "--log-every", "1", "--device", "cpu"]

    def train(name, steps, extra=()):
        args = [*common, "--out", str(tmp_path / name), "--work-dir", str(tmp_path / f"{name}_work")]
        return script.main([*args, "--steps", str(steps), *extra])

    assert train("split", 2) == 0
    assert train("split", 4) == 0
    assert "resumed from" in capsys.readouterr().out
    assert train("whole", 4) == 0
    a, b = load_corrective(tmp_path / "split"), load_corrective(tmp_path / "whole")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    card = (tmp_path / "split" / "MODEL_CARD.md").read_text()
    assert "mean ‖b̂(z,t) − z‖" in card and "Seed 0; 4 steps" in card
    assert (tmp_path / "split" / "loss.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="other settings"):
        train("split", 6, ["--lr", "0.01"])
