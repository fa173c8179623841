"""A prior is known by its weights, not by its name: tuning and correctives follow the fingerprint."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from engine.config import build_config
from engine.guidance.corrective import read_corrective_info
from engine.priors import SHIPPED_PRIORS, resolve_prior_spec
from engine.priors import identity as ident


@pytest.mark.parametrize("name", list(SHIPPED_PRIORS))
def test_each_shipped_corrective_was_made_for_its_shipped_weights(name):
    folder = SHIPPED_PRIORS[name].folder
    recorded = read_corrective_info(folder / "corrective")["prior"]["fingerprint"]
    assert ident.weights_fingerprint(folder) == recorded


@pytest.mark.parametrize("name", list(SHIPPED_PRIORS))
def test_shipped_weights_get_their_tuning_however_they_are_named(tmp_path: Path, name):
    folder = SHIPPED_PRIORS[name].folder
    copy = tmp_path / "my_prior"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("corrective", "*.png", "*.md"))
    for spec in (name, str(folder), str(copy)):
        cfg = build_config("a red cube", "sds", spec)
        # The world priors' measured settings: key light in camera space, ω = 10 for SDS.
        assert (cfg.renderer.light, cfg.guidance.guidance_scale) == ("camera_key", 10.0), spec
    assert resolve_prior_spec(str(copy)).identity().fingerprint == ident.weights_fingerprint(folder)


def test_other_weights_get_no_tuning(tiny_pixel_prior_dir: Path):
    cfg = build_config("a red cube", "sds", str(tiny_pixel_prior_dir))
    assert (cfg.renderer.light, cfg.guidance.guidance_scale) == ("around_camera", 100.0)


def test_fingerprint_changes_with_the_weights_and_is_cached_per_file_state(tmp_path: Path, monkeypatch):
    unet = tmp_path / "p" / "unet"
    unet.mkdir(parents=True)
    weights = unet / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"a" * 1000)
    first = ident.weights_fingerprint(tmp_path / "p")
    weights.write_bytes(b"b" * 1000)
    os.utime(weights, ns=(1, 1))  # a new modification time: the cache must not answer
    assert ident.weights_fingerprint(tmp_path / "p") != first
    assert ident.weights_fingerprint(tmp_path / "nowhere") is None

    # A large file (Stable Diffusion's gigabytes) is hashed by its size and both ends, not read whole.
    monkeypatch.setattr(ident, "FULL_HASH_BYTES", 100)
    monkeypatch.setattr(ident, "SAMPLE_BYTES", 10)
    weights.write_bytes(b"x" * 10 + b"m" * 980 + b"y" * 10)
    os.utime(weights, ns=(2, 2))
    sampled = ident.weights_fingerprint(tmp_path / "p")
    weights.write_bytes(b"z" * 10 + b"m" * 980 + b"y" * 10)  # the header changed
    os.utime(weights, ns=(3, 3))
    assert ident.weights_fingerprint(tmp_path / "p") != sampled


def test_lmc_sds_without_a_corrective_is_refused_before_anything_loads(tiny_pixel_prior_dir: Path):
    with pytest.raises(ValueError, match="needs a learned manifold corrective"):
        build_config("a red cube", "lmc-sds", str(tiny_pixel_prior_dir))
    with pytest.raises(ValueError, match="no manifold corrective at"):
        build_config(
            "a red cube", "lmc-sds", "builtin", overrides={"guidance.corrective": "/no/such/corrective"}
        )
    build_config("a red cube", "lmc-sds", "builtin")  # the built-in prior ships one


def test_hub_models_have_no_folder_or_fingerprint():
    from engine.priors import StableDiffusionConfig

    i = StableDiffusionConfig(model="someone/some-model").identity()
    assert (i.source, i.folder, i.fingerprint) == ("someone/some-model", None, None)
