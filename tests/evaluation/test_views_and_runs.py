"""Prompt → world object, the evaluation turntable, run keys and the run cache."""

import pytest
import torch

from engine.cameras import CameraBatch, turntable
from engine.evaluation.diversity import pixel_distance
from engine.evaluation.runs import RunResult, RunSettings, RunSpec, RunStore, get_run, run_key
from engine.evaluation.views import (
    ViewConfig,
    Views,
    framed_views,
    spec_for_prompt,
    true_radius,
    world_render,
    world_views,
)
from engine.world.scene import ObjectSpec


@pytest.mark.parametrize(
    "prompt,shape,colour",
    [
        ("a red cube", "cube", "red"),
        ("a snowman, front view", "snowman", "white"),
        ("a blue house", "house", "blue"),
        ("an orange cone", "cone", "orange"),
    ],
)
def test_spec_for_prompt(prompt, shape, colour):
    s = spec_for_prompt(prompt)
    assert (s.shape, s.colour, s.yaw, s.janus) == (shape, colour, 0.0, False)


def test_spec_for_prompt_refuses_non_world_prompts():
    for prompt in ("a dog", "a cube"):
        with pytest.raises(ValueError, match="world object"):
            spec_for_prompt(prompt)


def test_turntable_starts_at_the_front_and_goes_round(red_cube):
    assert red_cube.rgb.shape == (16, 3, 64, 64) and red_cube.mask.shape == (16, 1, 64, 64)
    expected = (torch.arange(16) * 22.5 + 180.0) % 360.0 - 180.0
    assert torch.allclose(red_cube.azimuth, expected)


def test_default_cameras_are_the_engine_turntable():
    ours, theirs = ViewConfig().cameras(), turntable(16, elevation=15.0, radius=2.5, fov_deg=45.0)
    for name in ("c2w", "fov", "elevation", "azimuth", "radius"):
        assert torch.allclose(getattr(ours, name), getattr(theirs, name), atol=1e-5), name


def test_framing_shows_a_small_object_as_large_as_the_true_one(eval_views):
    truth = world_views(ObjectSpec("house", "red", scale=0.9), eval_views)
    small = world_render(ObjectSpec("house", "red", scale=0.5), eval_views.size)
    framed = framed_views(small, eval_views, true_radius(ObjectSpec("house", "red", scale=0.9), eval_views))
    unframed = framed_views(small, ViewConfig(frame=False))
    assert 0.5 < framed.framing["zoom"] < 0.6  # R / R_true ≈ 0.5 / 0.9
    assert pixel_distance(framed.rgb, truth.rgb) < 0.5 * pixel_distance(unframed.rgb, truth.rgb)
    assert abs(float(framed.mask.mean() - truth.mask.mean())) < 0.1 * float(truth.mask.mean())
    assert truth.framing["zoom"] == 1.0 and max(abs(c) for c in truth.framing["centre"]) < 0.1


def test_framing_centres_an_object_off_the_origin(eval_views):
    spec = ObjectSpec("snowman", scale=0.9)
    offset = torch.tensor([0.25, -0.15, 0.2])

    def shifted(cams):  # the object seen from cameras moved by −offset: the object sits at +offset
        c2w = cams.c2w.clone()
        c2w[:, :3, 3] -= offset
        return world_render(spec, eval_views.size)(
            CameraBatch(c2w, cams.fov, cams.elevation, cams.azimuth, cams.radius)
        )

    truth = world_views(spec, eval_views)
    moved = framed_views(shifted, eval_views, true_radius(spec, eval_views))
    found = torch.tensor(moved.framing["centre"]) - torch.tensor(truth.framing["centre"])
    assert torch.allclose(found, offset, atol=0.03), found
    assert pixel_distance(moved.rgb, truth.rgb) < 0.02


def test_run_keys_follow_the_resolved_config():
    settings, views = RunSettings(overrides={"train.steps": 5}), ViewConfig()
    key = run_key(settings.config(RunSpec("a red cube", "lmc-sds", 0)), views)
    same = RunSpec("a red cube", "lmc-sds", 0, (("guidance.guidance_scale", 10.0),))  # the default ω
    assert run_key(settings.config(same), views) == key
    for other in (
        RunSpec("a red cube", "lmc-sds", 1),
        RunSpec("a red cube", "sds", 0),
        RunSpec("a red cube", "lmc-sds", 0, (("guidance.fixed_noise", False),)),
    ):
        assert run_key(settings.config(other), views) != key
    assert run_key(settings.config(RunSpec("a red cube", "lmc-sds", 0)), ViewConfig(n=8)) != key


def test_store_round_trip_and_cached_runs_never_load_the_prior(tmp_path, red_cube):
    store, settings, views = RunStore(tmp_path), RunSettings(overrides={"train.steps": 5}), ViewConfig()
    spec = RunSpec("a red cube", "sds", 0)
    key = run_key(settings.config(spec), views)
    record = {"seconds": {"setup": 0.0, "train": 1.0, "render": 0.1}, "diverged": None}
    store.save(
        RunResult(spec, key, Views(red_cube.rgb, red_cube.mask, red_cube.azimuth), record, cached=False)
    )

    def no_prior():
        raise AssertionError("a cached run must not load the prior")

    got = get_run(spec, settings, views, store, no_prior)
    assert got.cached and not got.diverged and torch.equal(got.views.rgb, red_cube.rgb)
    assert (store.folder(spec, key) / "views.png").exists()

    bad = RunSpec("a red cube", "sds", 1)
    bad_key = run_key(settings.config(bad), views)
    store.save(RunResult(bad, bad_key, None, {**record, "diverged": "diverged at step 3"}, cached=False))
    again = get_run(bad, settings, views, store, no_prior)
    assert again.diverged and again.views is None


def test_set_settings_reach_every_run_and_change_its_key():
    """``--set guidance.guidance_scale=30`` is in every run's config (and so in its cache key); a pair that is
    not KEY=VALUE, or a setting one of the suites' methods lacks, is refused before any run."""
    from engine.evaluation.config import EvalConfig

    base = EvalConfig(suites=("janus",)).run_settings()
    w30 = EvalConfig(
        suites=("janus",), set=("guidance.guidance_scale=30", "train.lr_grid=0.02")
    ).run_settings()
    spec, views = RunSpec("a red house", "sds", 0), ViewConfig()
    cfg = w30.config(spec)
    assert cfg.guidance.guidance_scale == 30.0 and cfg.train.lr_grid == 0.02
    assert run_key(cfg, views) != run_key(base.config(spec), views)
    for bad, words in (("guidance.guidance_scale", "is not KEY=VALUE"), ("guidance.lam=1", "guidance.lam")):
        with pytest.raises(ValueError, match=words):
            EvalConfig(set=(bad,)).validate()
