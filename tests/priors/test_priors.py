"""Both prior adapters through the same checks, on tiny random priors loaded offline from folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import load_file

import engine.priors as priors
from engine.configbase import field_docs
from engine.priors import (
    DEFAULT_SD_MODEL,
    DiffusionPrior,
    PixelDiffusionPrior,
    PixelPriorConfig,
    StableDiffusionConfig,
    StableDiffusionPrior,
    load_prior,
    resolve_prior_spec,
)
from tests.priors.tiny import HIDDEN, PIXEL_MAX_LENGTH, SD_MAX_LENGTH, TINY_VOCAB, build_tiny_pixel_prior

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pixel_prior(tiny_pixel_prior_dir: Path) -> DiffusionPrior:
    return load_prior(resolve_prior_spec(str(tiny_pixel_prior_dir)), "cpu")


@pytest.fixture(scope="module")
def sd_prior(tiny_sd_prior_dir: Path) -> DiffusionPrior:
    return load_prior(resolve_prior_spec(str(tiny_sd_prior_dir)), "cpu")


@pytest.fixture(params=["pixel", "sd"])
def prior(request: pytest.FixtureRequest) -> DiffusionPrior:
    return request.getfixturevalue(f"{request.param}_prior")


def _z(prior: DiffusionPrior, b: int = 2) -> torch.Tensor:
    return torch.randn(b, prior.latent_channels, prior.latent_resolution, prior.latent_resolution)


# --- construction and attributes -------------------------------------------------------------------


def test_attributes_come_from_the_model_configs(
    pixel_prior: DiffusionPrior, sd_prior: DiffusionPrior
) -> None:
    assert isinstance(pixel_prior, PixelDiffusionPrior)
    assert (pixel_prior.resolution, pixel_prior.latent_channels, pixel_prior.latent_resolution) == (16, 3, 16)
    assert pixel_prior.name.startswith("pixel:")
    assert isinstance(sd_prior, StableDiffusionPrior)
    assert (sd_prior.resolution, sd_prior.latent_channels, sd_prior.latent_resolution) == (64, 4, 8)
    assert sd_prior.name.startswith("sd:")


def test_common_attributes(prior: DiffusionPrior) -> None:
    assert prior.device == CPU and prior.dtype == torch.float32
    assert prior.num_train_timesteps == 1000
    assert prior.prediction_type == "epsilon"
    assert prior.alphas_cumprod.dtype == torch.float32 and prior.alphas_cumprod.shape == (1000,)
    reference = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    ).alphas_cumprod
    torch.testing.assert_close(prior.alphas_cumprod, reference.float())
    assert isinstance(prior.unet, UNet2DConditionModel)
    assert not prior.unet.training
    assert not any(p.requires_grad for p in prior.unet.parameters())


def test_config_fields_are_documented() -> None:
    assert set(field_docs(PixelPriorConfig)) == {"path"}
    assert set(field_docs(StableDiffusionConfig)) == {"model", "revision"}


def test_tiny_builder_is_deterministic(tmp_path: Path, tiny_pixel_prior_dir: Path) -> None:
    again = build_tiny_pixel_prior(tmp_path)
    name = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(tiny_pixel_prior_dir / name), load_file(again / name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- prompts ---------------------------------------------------------------------------------------


def test_encode_prompts_shape_dtype_and_cache(prior: DiffusionPrior) -> None:
    calls: list[int] = []
    hook = prior._text_encoder.register_forward_hook(lambda m, args, kwargs_out: calls.append(1))
    try:
        prompts = ["", "a green cone, side view", "a green cone, side view"]
        emb = prior.encode_prompts(prompts)
        length = PIXEL_MAX_LENGTH if isinstance(prior, PixelDiffusionPrior) else SD_MAX_LENGTH
        assert emb.shape == (3, length, HIDDEN) and emb.dtype == prior.dtype and not emb.requires_grad
        assert torch.equal(emb[1], emb[2]) and not torch.allclose(emb[0], emb[1])
        n = len(calls)
        assert n <= 1  # the two distinct prompts are encoded in one batch (0 if cached by an earlier test)
        again = prior.encode_prompts(["a green cone, side view", ""])
        assert len(calls) == n  # served from the cache
        torch.testing.assert_close(again, emb[[1, 0]])
    finally:
        hook.remove()


def test_encode_prompts_rejects_bad_input(prior: DiffusionPrior) -> None:
    with pytest.raises(ValueError, match="non-empty sequence"):
        prior.encode_prompts("a red cube")  # a bare string, not a list
    with pytest.raises(ValueError, match="non-empty sequence"):
        prior.encode_prompts([])
    with pytest.raises(ValueError, match="shorten it"):
        prior.encode_prompts([" ".join(["a red cube"] * 30)])


def test_vocabulary_check_names_unknown_and_known_words(pixel_prior: DiffusionPrior) -> None:
    pixel_prior.vocabulary_check("A Red CUBE, front view")  # case-insensitive, comma splits off
    pixel_prior.vocabulary_check("")
    with pytest.raises(ValueError) as err:
        pixel_prior.vocabulary_check("a red hamburger, front view")
    msg = str(err.value)
    assert "'hamburger'" in msg and "Stable Diffusion" in msg
    assert all(w in msg for w in TINY_VOCAB)
    assert "[PAD]" not in msg and "[UNK]" not in msg
    with pytest.raises(ValueError, match="hamburger"):
        pixel_prior.encode_prompts(["a hamburger"])  # encoding checks too, instead of feeding [UNK]


def test_vocabulary_check_is_a_no_op_for_open_vocabulary(sd_prior: DiffusionPrior) -> None:
    sd_prior.vocabulary_check("a hamburger, 3D render!")
    assert sd_prior.encode_prompts(["a hamburger"]).shape[0] == 1


# --- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, None, 40])
def test_encode_images_shape_and_grad(prior: DiffusionPrior, size: int | None) -> None:
    size = size or prior.resolution
    rgb = torch.rand(2, 3, size, size, requires_grad=True)
    z = prior.encode_images(rgb)
    assert z.shape == (2, prior.latent_channels, prior.latent_resolution, prior.latent_resolution)
    assert z.dtype == torch.float32
    z.square().sum().backward()
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0


def test_encode_images_resizes_to_native_resolution(prior: DiffusionPrior) -> None:
    r = prior.resolution
    big = torch.rand(1, 3, 2 * r, 2 * r)
    native = F.interpolate(big, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(prior.encode_images(big), prior.encode_images(native))


def test_pixel_model_space_is_2rgb_minus_1(pixel_prior: DiffusionPrior) -> None:
    rgb = torch.rand(2, 3, 16, 16)
    z = pixel_prior.encode_images(rgb)
    torch.testing.assert_close(z, 2 * rgb - 1)
    torch.testing.assert_close(pixel_prior.decode(z), rgb)


def test_encode_images_rejects_wrong_shape(prior: DiffusionPrior) -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        prior.encode_images(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        prior.encode_images(torch.rand(1, 4, 16, 16))


def test_decode(prior: DiffusionPrior) -> None:
    z = _z(prior).requires_grad_()
    rgb = prior.decode(z)
    assert rgb.shape == (2, 3, prior.resolution, prior.resolution) and rgb.dtype == torch.float32
    assert not rgb.requires_grad and 0 <= rgb.min() and rgb.max() <= 1
    with pytest.raises(ValueError, match="decode expects z"):
        prior.decode(torch.rand(1, 5, 8, 8))


# --- denoiser and forward process ------------------------------------------------------------------


def test_predict_noise_shape_dtype_no_grad(prior: DiffusionPrior) -> None:
    z_t = _z(prior).requires_grad_()
    emb = prior.encode_prompts(["a red cube", "a blue sphere"])
    eps = prior.predict_noise(z_t, torch.tensor([10, 900]), emb)
    assert eps.shape == z_t.shape and eps.dtype == torch.float32 and not eps.requires_grad
    torch.testing.assert_close(
        prior.predict_noise(z_t, 500, emb), prior.predict_noise(z_t, torch.tensor(500), emb)
    )
    prior.predict_noise(z_t, torch.tensor([3, 4]), emb, cross_attention_kwargs={})  # passthrough to the UNet


def test_predict_noise_with_grad_for_trainable_copies(prior: DiffusionPrior) -> None:
    z_t = _z(prior).requires_grad_()
    emb = prior.encode_prompts(["a red cube", "a blue sphere"])
    with torch.no_grad():  # grad=True wins over the caller's mode: ESD trains a LoRA through this
        eps = prior.predict_noise(z_t, torch.tensor([10, 900]), emb, grad=True)
    assert eps.requires_grad
    eps.sum().backward()
    assert z_t.grad is not None and z_t.grad.abs().sum() > 0


def test_classifier_free_guidance_batch(prior: DiffusionPrior) -> None:
    b = 3
    z_t, t = _z(prior, b), torch.randint(0, prior.num_train_timesteps, (b,))
    emb = prior.encode_prompts([""] * b + ["a snowman, back view"] * b)
    eps = prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), emb)
    uncond, cond = eps.chunk(2)
    assert eps.shape == (2 * b, *z_t.shape[1:]) and not torch.allclose(uncond, cond)
    with pytest.raises(ValueError, match="batch mismatch"):
        prior.predict_noise(z_t, t, emb)
    with pytest.raises(ValueError, match="timesteps"):
        prior.predict_noise(z_t, torch.tensor([1, 2]), emb[:b])


def test_add_noise_matches_diffusers_and_inverts(prior: DiffusionPrior) -> None:
    z, eps = _z(prior, 4), _z(prior, 4)
    t = torch.tensor([0, 1, 500, 999])
    z_t = prior.add_noise(z, eps, t)
    reference = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(z_t, reference.add_noise(z, eps, t))
    torch.testing.assert_close(prior.predict_x0(z_t, t, eps), z, atol=1e-4, rtol=1e-4)


def test_prediction_types_convert_to_epsilon(
    pixel_prior: DiffusionPrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    z_t, t = _z(pixel_prior), torch.tensor([100, 700])
    emb = pixel_prior.encode_prompts(["a cube", "a cone"])
    raw = pixel_prior.predict_noise(z_t, t, emb)
    a = pixel_prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    monkeypatch.setattr(pixel_prior, "prediction_type", "v_prediction")
    torch.testing.assert_close(pixel_prior.predict_noise(z_t, t, emb), a.sqrt() * raw + (1 - a).sqrt() * z_t)
    monkeypatch.setattr(pixel_prior, "prediction_type", "sample")
    torch.testing.assert_close(
        pixel_prior.predict_noise(z_t, t, emb), (z_t - a.sqrt() * raw) / (1 - a).sqrt()
    )


# --- --prior specs and loading errors --------------------------------------------------------------


def test_resolve_local_folders(tiny_pixel_prior_dir: Path, tiny_sd_prior_dir: Path, tmp_path: Path) -> None:
    assert resolve_prior_spec(str(tiny_pixel_prior_dir)) == PixelPriorConfig(path=str(tiny_pixel_prior_dir))
    assert resolve_prior_spec(f"pixel:{tiny_pixel_prior_dir}") == PixelPriorConfig(
        path=str(tiny_pixel_prior_dir)
    )
    assert resolve_prior_spec(str(tiny_sd_prior_dir)) == StableDiffusionConfig(model=str(tiny_sd_prior_dir))
    assert resolve_prior_spec(f"sd:{tiny_sd_prior_dir}") == StableDiffusionConfig(
        model=str(tiny_sd_prior_dir)
    )
    (tmp_path / "text_encoder").mkdir()
    with pytest.raises(ValueError, match=f"{tmp_path}.*no unet/"):
        resolve_prior_spec(str(tmp_path))
    with pytest.raises(ValueError, match="no unet/"):
        resolve_prior_spec(f"pixel:{tmp_path}")
    with pytest.raises(ValueError, match="no such folder"):
        resolve_prior_spec(str(tmp_path / "missing"))


def test_resolve_stable_diffusion_names() -> None:
    assert resolve_prior_spec("sd") == StableDiffusionConfig() == resolve_prior_spec(" sd-2.1 ")
    assert StableDiffusionConfig().model == DEFAULT_SD_MODEL == "stabilityai/stable-diffusion-2-1-base"
    assert resolve_prior_spec("sd:owner/model") == StableDiffusionConfig(model="owner/model")
    assert resolve_prior_spec("someone/sd-turbo_v1.5") == StableDiffusionConfig(model="someone/sd-turbo_v1.5")
    with pytest.raises(ValueError, match="after the colon"):
        resolve_prior_spec("sd:")


@pytest.mark.parametrize("spec", ["", "dall-e", "a red cube", "http://x/y"])
def test_resolve_rejects_unknown_forms(spec: str) -> None:
    with pytest.raises(ValueError, match="builtin.*sd:HUB_ID_OR_PATH.*OWNER/NAME"):
        resolve_prior_spec(spec)


@pytest.mark.parametrize("name", list(priors.SHIPPED_PRIORS))
def test_shipped_priors_resolve_by_name_and_by_layout(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / name
    monkeypatch.setitem(priors.SHIPPED_PRIORS, name, priors.ShippedPrior(name, folder, "a test prior"))
    with pytest.raises(ValueError, match=f"shipped prior '{name}' is not installed .*: pass --prior PATH"):
        resolve_prior_spec(name)
    (folder / "unet").mkdir(parents=True)
    assert resolve_prior_spec(name) == PixelPriorConfig(path=str(folder))  # no vae/: pixel space
    (folder / "vae").mkdir()
    assert resolve_prior_spec(f" {name} ") == StableDiffusionConfig(model=str(folder))  # latent


def test_every_shipped_prior_is_installed_and_has_its_tuning() -> None:
    from engine.config import PRIOR_TUNING, prior_tuning

    assert set(PRIOR_TUNING) == set(priors.SHIPPED_PRIORS)
    for name in priors.SHIPPED_PRIORS:
        identity = resolve_prior_spec(name).identity()
        assert identity.fingerprint is not None and prior_tuning(identity) is PRIOR_TUNING[name], name


@pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
def test_loading_errors_are_one_line(tmp_path: Path, tiny_sd_prior_dir: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        PixelPriorConfig(path=str(tmp_path / "nowhere")).setup(CPU)
    for sub in ("unet", "text_encoder", "tokenizer", "scheduler"):
        (tmp_path / sub).mkdir()
    with pytest.raises(RuntimeError, match="could not load pixel prior from") as err:
        PixelPriorConfig(path=str(tmp_path)).setup(CPU)  # folders present, files missing
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="lacks vae/"):
        StableDiffusionConfig(model=str(tmp_path)).setup(CPU)
    with pytest.raises(RuntimeError, match="not found locally and the model hub is unreachable") as err:
        StableDiffusionConfig(model="nobody/no-such-model").setup(CPU)  # HF_HUB_OFFLINE=1 in conftest
    assert "\n" not in str(err.value)


def test_the_sampler_clamps_x0_only_to_a_pixel_priors_data_range(
    pixel_prior: DiffusionPrior, sd_prior: DiffusionPrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pixel z = 2·rgb − 1 lies in [−1, 1], so the sampler may clamp x₀ there; latents are unbounded, and a
    clamp at ±1 would flatten every scaled latent's tails (it did, before priors said which range is theirs)."""
    from engine.priors.sample import sample_images

    assert pixel_prior.x0_clip == 1.0 and sd_prior.x0_clip is None
    final: dict[str, float] = {}
    for key, prior in (("pixel", pixel_prior), ("sd", sd_prior)):
        cls = type(prior)
        monkeypatch.setattr(cls, "predict_x0", lambda self, *a, _o=cls.predict_x0: 50.0 * _o(self, *a))
        monkeypatch.setattr(
            prior, "decode", lambda z, _k=key: final.__setitem__(_k, float(z.abs().max())) or z
        )
        sample_images(prior, ["a red cube"], steps=2, generator=torch.Generator().manual_seed(0))
        monkeypatch.undo()
    assert final["pixel"] <= 1.0 + 1e-6 < 2.0 < final["sd"], final  # the last step returns x₀ itself


def test_the_sampler_starts_where_the_x0_estimate_is_not_degenerate(
    sd_prior: DiffusionPrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the cosine schedule ᾱ_999 = 2.4·10⁻⁹, so a first step at t = 999 divides the ε error by
    √ᾱ ≈ 5·10⁻⁵; unclamped latents then decode to mottled, oversaturated noise. The sampler starts at the
    noisiest t with SNR ≥ MIN_START_SNR instead, and a schedule that never gets that noisy keeps t = T − 1."""
    from diffusers import DDPMScheduler

    from engine.priors.sample import MIN_START_SNR, sample_images

    seen: list[int] = []
    original = type(sd_prior).predict_noise

    def record(self, z_t, t, emb, *a, **kw):
        seen.append(int(t[0]))
        return original(self, z_t, t, emb, *a, **kw)

    monkeypatch.setattr(type(sd_prior), "predict_noise", record)
    for schedule, first in (("squaredcos_cap_v2", None), ("scaled_linear", 999)):
        ab = DDPMScheduler(beta_schedule=schedule, beta_start=0.00085, beta_end=0.012).alphas_cumprod
        monkeypatch.setattr(sd_prior, "alphas_cumprod", ab)
        seen.clear()
        sample_images(sd_prior, ["a red cube"], steps=4, generator=torch.Generator().manual_seed(0))
        snr, start = ab / (1 - ab), seen[0]
        assert snr[start] >= MIN_START_SNR and (start == 999 or snr[start + 1] < MIN_START_SNR)
        if first is not None:
            assert seen[0] == first
        else:
            assert 950 < seen[0] < 999 and ab[seen[0]].sqrt() > 0.03
        assert seen[-1] == 0 and seen == sorted(seen, reverse=True)
