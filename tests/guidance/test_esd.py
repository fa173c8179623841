"""ESD / VSD against an independent computation of the paper's update (eq. 9, Algorithm 1), ε_ψ's
training, the untouched frozen prior, both prior kinds, determinism and state round trips."""

import gc
import io

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch import nn

from engine.cameras import orbit_cameras
from engine.config import RunConfig, build_config
from engine.guidance import ESDConfig, PromptEmbeddings, VSDConfig, method_config
from engine.priors.pixel import PixelPriorConfig
from engine.priors.stable_diffusion import StableDiffusionConfig


@pytest.fixture(scope="module")
def pixel_prior(tiny_pixel_prior_dir):
    return PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")


@pytest.fixture(scope="module")
def sd_prior(tiny_sd_prior_dir):
    return StableDiffusionConfig(str(tiny_sd_prior_dir)).setup("cpu")


@pytest.fixture(params=["pixel", "sd"])
def prior_and_dir(request):
    """(prior, folder) for the tiny pixel prior and the tiny Stable Diffusion (latent) prior."""
    return request.getfixturevalue(f"{request.param}_prior"), request.getfixturevalue(
        f"tiny_{request.param}_prior_dir"
    )


def text_for(prior, prompts):
    """Embeddings as the trainer makes them: ``cond`` with each view's suffix, ``plain`` without it."""
    plain = [p.split(",")[0] for p in prompts]
    return PromptEmbeddings(
        cond=prior.encode_prompts(prompts),
        uncond=prior.encode_prompts([""] * len(prompts)),
        plain=prior.encode_prompts(plain),
    )


def cameras(b):
    one = torch.ones(b)
    return orbit_cameras(one * 15.0, torch.linspace(-150.0, 150.0, b), one * 2.5, one * 45.0).c2w


def randomise(eps_psi, seed=0, scale=0.2):
    """Non-zero LoRA and camera MLP (fresh ones are exactly ε_φ), so every term of the formula matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in eps_psi.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


def reference_unets(folder, eps_psi):
    """(ε_φ, ε_ψ) rebuilt from the saved weights, without peft or hooks: ε_ψ has every LoRA merged into its
    base weight, W + (α/r)·B·A with α = r, and takes the camera embedding through diffusers' class embedding."""
    base = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    lora = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    lora.class_embedding = nn.Identity()  # class_labels = the precomputed camera embedding, added to emb
    state = eps_psi.state_dict()
    with torch.no_grad():
        for key, a in state.items():
            if not key.endswith("lora_A/weight"):
                continue
            path = key.removeprefix("lora.").removesuffix("/lora_A/weight")
            b = state[f"lora.{path}/lora_B/weight"]
            lora.get_submodule(path.replace("/", ".")).weight += b @ a
    return base, lora


def camera_embedding(eps_psi, c2w):
    """The camera MLP written out: Linear → SiLU → Linear on the flattened c2w."""
    s = {k.removeprefix("camera.net."): v for k, v in eps_psi.state_dict().items() if k.startswith("camera.")}
    h = torch.nn.functional.silu(c2w.reshape(len(c2w), 16) @ s["0.weight"].T + s["0.bias"])
    return h @ s["2.weight"].T + s["2.bias"]


def expected_image_grad(prior, folder, guidance, images, text, c2w, seed, lam):
    """∂L/∂images of the paper's update, computed independently: same draws (t, then ε), UNets called one
    branch at a time, the chain rule through the prior's encoder by an explicit vector-Jacobian product."""
    cfg, b = guidance.cfg, images.shape[0]
    gen = torch.Generator().manual_seed(seed)
    T = prior.num_train_timesteps
    t = torch.randint(int(cfg.timesteps.t_min * T), int(cfg.timesteps.t_max * T), (b,), generator=gen)
    x = images.detach().clone().requires_grad_(True)
    z = prior.encode_images(x)
    eps = torch.randn(z.shape, generator=gen)
    ab = prior.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    z_t = ab.sqrt() * z.detach() + (1 - ab).sqrt() * eps
    base, lora = reference_unets(folder, guidance.eps_psi)
    with torch.no_grad():
        # One [uncond; cond] batch, as the prior is called: batched and unbatched UNet calls differ by float32
        # round-off (~5e-7), which ω = 7.5 would amplify to ~1e-5 of the gradient.
        e_u, e_c = base(
            torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([text.uncond, text.cond])
        ).sample.chunk(2)
        emb = camera_embedding(guidance.eps_psi, c2w)
        # ε_ψ sees the prompt without its view suffix (ESD eq. 8–9: ε_ψ(∅) is the camera-marginal score).
        psi_c = lora(z_t, t, encoder_hidden_states=text.plain, class_labels=emb).sample
        psi_0 = lora(z_t, t, encoder_hidden_states=text.plain, class_labels=torch.zeros_like(emb)).sample
    w = 1 - ab
    eps_phi = e_u + cfg.guidance_scale * (e_c - e_u)
    if lam == 0.0:  # VSD (ProlificDreamer), written out on its own
        g = w * (eps_phi - psi_c)
    else:  # ESD, eq. 9 / Algorithm 1
        g = w * (eps_phi - lam * psi_0 - (1 - lam) * psi_c)
    # The terms differ (else the check would be vacuous): LoRA, camera and ∅ each change ε_ψ.
    assert (psi_c - psi_0).abs().max() > 1e-3 and (psi_0 - e_c).abs().max() > 1e-3
    (grad,) = torch.autograd.grad(z, x, g / b)
    return t, grad


def run_formula_check(prior, folder, cfg, lam):
    torch.manual_seed(0)
    size = prior.resolution
    images = torch.rand(2, 3, size, size, requires_grad=True)
    text = text_for(prior, ["a red cube, back view", "a blue sphere, front view"])
    assert (text.cond - text.plain).abs().max() > 1e-3  # else a suffix leaking into ε_ψ would go unseen
    c2w = cameras(2)
    guidance = cfg.setup(prior, seed=3)
    randomise(guidance.eps_psi)
    t_ref, expected = expected_image_grad(prior, folder, guidance, images, text, c2w, 7, lam)
    out = guidance(images, text, 0, 10, torch.Generator().manual_seed(7), cameras=c2w)
    out.loss.backward()
    assert torch.equal(out.t, t_ref)
    err = (images.grad - expected).abs().max() / expected.abs().max()
    assert err < 1e-5, float(err)


@pytest.mark.parametrize("lam", [0.5, 1.0, 0.3])
def test_esd_gradient_equals_the_paper_formula(prior_and_dir, lam):
    prior, folder = prior_and_dir
    run_formula_check(prior, folder, ESDConfig(lam=lam), lam)


def test_vsd_is_esd_with_lambda_zero(prior_and_dir):
    """``vsd`` is a preset of the same implementation, and its update is ε̂^ω_φ − ε_ψ(x_t, t, c, y)."""
    prior, folder = prior_and_dir
    cfg = method_config("vsd")
    assert isinstance(cfg, ESDConfig) and cfg.lam == 0.0
    assert type(cfg.setup(prior)).__name__ == type(ESDConfig().setup(prior)).__name__ == "ESDGuidance"
    run_formula_check(prior, folder, cfg, 0.0)


def test_camera_dropout_trains_the_camera_free_branch(pixel_prior):
    prior = pixel_prior
    guidance = ESDConfig(camera_dropout=0.5).setup(prior)
    text, c2w = text_for(prior, ["a red cube"] * 2), cameras(2)
    gen = torch.Generator().manual_seed(0)
    dropped = 0.0
    for step in range(8):
        images = torch.rand(2, 3, prior.resolution, prior.resolution, requires_grad=True)
        dropped += guidance(images, text, step, 8, gen, cameras=c2w).extras["cameras_dropped"]
    assert 0 < dropped < 16  # of 2 views × 8 updates, some but not all cameras were ∅


def test_eps_psi_training_loss_falls_on_a_fixed_batch(pixel_prior):
    """30 updates on one batch (same t, ε', dropout each time) fit ε_ψ to it.

    A rank-4 LoRA and a camera MLP on a random 16 px UNet can only go so far (~8% here): the check is that
    the loss falls at every update, and by a margin."""
    prior = pixel_prior
    guidance = ESDConfig(lora_lr=1e-2).setup(prior)
    torch.manual_seed(1)
    z = prior.encode_images(torch.rand(4, 3, prior.resolution, prior.resolution))
    cond, c2w = prior.encode_prompts(["a red cube"] * 4), cameras(4)
    losses = [guidance.train_eps_psi(z, cond, c2w, torch.Generator().manual_seed(0))[0] for _ in range(30)]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.95 * losses[0], losses


def base_weights(module):
    """Parameters of a module by their pre-peft names, LoRA matrices left out."""
    return {
        n.replace(".base_layer", ""): p.detach().clone()
        for n, p in module.named_parameters()
        if "lora_" not in n
    }


def test_frozen_prior_is_untouched(tiny_pixel_prior_dir):
    prior = PixelPriorConfig(str(tiny_pixel_prior_dir)).setup("cpu")  # a fresh prior: no adapters yet
    unet_before, text_before = base_weights(prior.unet), base_weights(prior._text_encoder)
    torch.manual_seed(0)
    z_t = torch.randn(2, 3, prior.resolution, prior.resolution)
    t, emb = torch.tensor([100, 700]), prior.encode_prompts(["a red cube", "a blue cone"])
    eps_before = prior.predict_noise(z_t, t, emb)

    guidance = ESDConfig(lora_lr=1e-2).setup(prior)
    text, c2w = text_for(prior, ["a red cube"] * 2), cameras(2)
    gen = torch.Generator().manual_seed(0)
    for step in range(3):
        images = torch.rand(2, 3, prior.resolution, prior.resolution, requires_grad=True)
        guidance(images, text, step, 3, gen, cameras=c2w).loss.backward()
    assert any(p.abs().sum() > 0 for k, p in guidance.eps_psi.state_dict().items() if "lora_B" in k)

    unet_after = base_weights(prior.unet)
    assert unet_after.keys() == unet_before.keys()
    assert all(torch.equal(unet_before[k], unet_after[k]) for k in unet_before)
    assert all(
        torch.equal(a, b) for a, b in zip(text_before.values(), base_weights(prior._text_encoder).values())
    )
    assert not any(p.requires_grad for n, p in prior.unet.named_parameters() if "lora_" not in n)
    # ε_φ is bitwise what it was (the adapters are off outside ε_ψ's calls) ...
    assert torch.equal(prior.predict_noise(z_t, t, emb), eps_before)
    # ... and ε_ψ, trained, is not.
    assert not torch.allclose(guidance.eps_psi.predict_noise(z_t, t, emb, c2w), eps_before)
    # When the guidance goes away, its adapter leaves the shared UNet.
    del guidance
    gc.collect()
    assert not any("lora_" in n for n, _ in prior.unet.named_parameters())


def test_shapes_finite_gradients_and_determinism(prior_and_dir):
    prior, _ = prior_and_dir
    size = prior.resolution
    text, c2w = text_for(prior, ["a red cube", "a green cone"]), cameras(2)

    def run(seed, gen_seed, steps=2):
        guidance = ESDConfig().setup(prior, seed=seed)
        init = {k: v.clone() for k, v in guidance.eps_psi.state_dict().items()}
        gen = torch.Generator().manual_seed(gen_seed)
        grads, extras = [], []
        for step in range(steps):
            images = torch.linspace(0, 1, 2 * 3 * size * size).reshape(2, 3, size, size).requires_grad_(True)
            out = guidance(images, text, step, steps, gen, cameras=c2w)
            out.loss.backward()
            assert out.loss.ndim == 0 and out.t.shape == (2,)
            assert images.grad.shape == images.shape and torch.isfinite(images.grad).all()
            assert torch.isfinite(torch.tensor(out.extras["lora_loss"]))
            grads.append(images.grad)
            extras.append(out.extras)
        return torch.stack(grads), extras, init

    a, extras_a, init_a = run(0, 1)
    b, extras_b, init_b = run(0, 1)
    assert torch.equal(a, b) and extras_a == extras_b
    assert all(torch.equal(init_a[k], init_b[k]) for k in init_a)
    # The run seed initialises ε_ψ (LoRA A, camera MLP); the guidance stream draws t, ε and the dropout.
    init_c = run(1, 1, steps=1)[2]
    assert not torch.equal(init_a["camera.net.0.weight"], init_c["camera.net.0.weight"])
    assert not torch.equal(a, run(0, 2)[0])


def test_state_dict_round_trip_continues_identically(pixel_prior):
    prior = pixel_prior
    text, c2w = text_for(prior, ["a red cube"]), cameras(1)
    images = torch.rand(1, 3, prior.resolution, prior.resolution)
    a = ESDConfig(lora_lr=1e-2).setup(prior, seed=0)
    gen = torch.Generator().manual_seed(0)
    for step in range(2):
        a(images.clone().requires_grad_(True), text, step, 4, gen, cameras=c2w)
    buf = io.BytesIO()  # through torch.save, as the trainer's checkpoint (no tensors shared with ``a``)
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state, gen_state = torch.load(buf), gen.get_state()
    b = ESDConfig(lora_lr=1e-2).setup(prior, seed=5)  # other init, overwritten by the state
    b.load_state_dict(state)
    gen_b = torch.Generator()
    gen_b.set_state(gen_state)
    for step in (2, 3):
        oa = a(images.clone().requires_grad_(True), text, step, 4, gen, cameras=c2w)
        ob = b(images.clone().requires_grad_(True), text, step, 4, gen_b, cameras=c2w)
        assert torch.equal(oa.loss, ob.loss) and oa.extras == ob.extras


def test_missing_cameras_and_bad_settings_are_clear_errors(pixel_prior):
    images = torch.rand(1, 3, 16, 16, requires_grad=True)
    guidance = ESDConfig().setup(pixel_prior)
    with pytest.raises(ValueError, match="camera-to-world"):
        guidance(images, text_for(pixel_prior, ["a cube"]), 0, 1, torch.Generator())
    for kw, msg in [
        ({"lam": 1.5}, r"lam must be in \[0, 1\]"),
        ({"camera_dropout": 0.0}, "camera_dropout must be > 0"),
        ({"lora_rank": 0}, "lora_rank must be >= 1"),
        ({"lora_lr": 0.0}, "lora_lr must be > 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            ESDConfig(**kw).setup(pixel_prior)
    VSDConfig(camera_dropout=0.0).validate()  # VSD never uses the camera-free branch


@pytest.mark.parametrize("method,lam", [("esd", 0.5), ("vsd", 0.0)])
def test_run_config_selects_and_round_trips_esd(method, lam):
    cfg = build_config("a red cube", method=method, prior="builtin", overrides={"guidance.lora_rank": 8})
    assert isinstance(cfg.guidance, ESDConfig) and cfg.guidance.lam == lam and cfg.guidance.lora_rank == 8
    assert cfg.guidance.timesteps.anneal == "step"
    back = RunConfig.from_dict(cfg.to_dict())
    assert back == cfg and type(back.guidance) is type(cfg.guidance)


def test_cli_flags_reach_the_esd_config():
    from engine.cli import overrides_from
    from engine.generate import build_parser

    parser, paths = build_parser()
    args = parser.parse_args(
        [
            "a red cube",
            "--out",
            "x.glb",
            "--method",
            "esd",
            "--guidance.lam",
            "0.3",
            "--guidance.lora-timesteps.t-max",
            "0.9",
        ]
    )
    cfg = build_config(args.prompt, args.method, "builtin", args.preset, overrides_from(args, paths))
    assert cfg.guidance.lam == 0.3 and cfg.guidance.lora_timesteps.t_max == 0.9
    assert "ε_ψ" in parser.format_help()  # help comes from the ESD config docstrings


def test_the_camera_gap_is_zero_at_initialisation_and_grows_once_eps_psi_differs(pixel_prior):
    """ESD logs ‖ε_ψ(c) − ε_ψ(∅)‖ / ‖ε_ψ(∅)‖: 0 for a fresh ε_ψ (λ has no effect yet), > 0 once it has learnt."""
    size = pixel_prior.resolution
    images = torch.rand(2, 3, size, size)
    text = text_for(pixel_prior, ["a red cube, back view", "a blue sphere, front view"])
    fresh = ESDConfig(lora_steps=1).setup(pixel_prior, seed=0)
    gap = fresh.render_score(images * 2 - 1, torch.tensor([500, 500]), text.view_free, cameras(2))[1]
    assert gap == 0.0
    randomise(fresh.eps_psi)
    gap = fresh.render_score(images * 2 - 1, torch.tensor([500, 500]), text.view_free, cameras(2))[1]
    assert gap > 1e-3
    assert (
        ESDConfig(lam=1.0)
        .setup(pixel_prior)
        .render_score(images * 2 - 1, torch.tensor([500, 500]), text.view_free, cameras(2))[1]
        is None
    )  # one branch only: nothing to compare
