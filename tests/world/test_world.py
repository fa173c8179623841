"""The procedural world: rendering conventions (frame, background, silhouettes, fronts, Janus objects,
colours) and sampling (determinism, view bias, captions, vocabulary)."""

import math

import pytest
import torch

from engine.cameras import View, orbit_cameras, turntable, view_of
from engine.render.renderer import RendererConfig
from engine.world import (
    CLASS_NAMES,
    COLOUR_NAMES,
    COLOURS,
    ObjectSpec,
    WorldConfig,
    caption_of,
    caption_words,
    render_object,
    render_scenes,
    vocabulary,
)

BG = torch.tensor(RendererConfig().background_color)


def cams_at(*azimuths: float, elevation: float = 15.0, radius: float = 2.5, fov: float = 45.0):
    n = len(azimuths)
    return orbit_cameras(
        torch.full((n,), elevation), torch.tensor(azimuths), torch.full((n,), radius), torch.full((n,), fov)
    )


def count(images: torch.Tensor, colour: str) -> torch.Tensor:
    """Pixels per image whose hue is clearly carrot orange / window glass."""
    r, g, b = images.unbind(1)
    if colour == "orange":
        hit = (r > 0.3) & (g > 0.3 * r) & (g < 0.7 * r) & (b < 0.4 * g)
    else:  # glass: light blue
        hit = (b > 0.45) & (b > r + 0.2) & (g > r + 0.1)
    return hit.sum((1, 2))


def test_same_seed_same_batch_and_output_format():
    cfg = WorldConfig(size=24, light_jitter=0.2)
    a = cfg.setup().sample_batch(10, torch.Generator().manual_seed(7))
    b = cfg.setup().sample_batch(10, torch.Generator().manual_seed(7))
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks) and a.captions == b.captions
    c = cfg.setup().sample_batch(10, torch.Generator().manual_seed(8))
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (10, 3, 24, 24) and a.images.dtype == torch.float32
    assert a.masks.shape == (10, 1, 24, 24)
    assert a.images.min() >= 0 and a.images.max() <= 1 and a.masks.min() >= 0 and a.masks.max() <= 1
    first = next(WorldConfig(size=8, seed=3).setup().batches(4))
    assert first.captions == next(WorldConfig(size=8, seed=3).setup().batches(4)).captions


def test_background_is_exactly_the_engine_background():
    out = render_scenes(
        [ObjectSpec(n, "white" if n == "snowman" else "red") for n in CLASS_NAMES], cams_at(*[30.0] * 8)
    )
    empty = out.masks[:, 0] == 0
    assert empty.float().mean() > 0.5
    assert torch.equal(out.images.permute(0, 2, 3, 1)[empty], BG.expand(int(empty.sum()), 3))
    # Covered pixels of a red cube are far from grey (shaded white, by design, can pass through 0.7).
    cube = CLASS_NAMES.index("cube")
    full = out.masks[cube, 0] == 1
    assert (out.images[cube].permute(1, 2, 0)[full] - BG).abs().amax(-1).min() > 0.3


@pytest.mark.parametrize("shape", CLASS_NAMES)
def test_objects_are_centred_and_fit_the_expected_ball(shape):
    colour = "white" if shape == "snowman" else "blue"
    out = render_object(
        ObjectSpec(shape, colour), turntable(8, elevation=20.0, radius=2.5, fov_deg=45.0), size=64
    )
    m = out.masks[:, 0]
    coords = torch.arange(64.0) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    area = m.sum((1, 2))
    cx, cy = (m * xs).sum((1, 2)) / area, (m * ys).sum((1, 2)) / area
    assert ((cx - 32).abs() < 4).all() and ((cy - 32).abs() < 6).all()
    # A ball of radius r at distance 2.5 projects to a disc of radius f·tan(asin(r/2.5)), f = 32/tan(22.5°).
    focal = 32 / math.tan(math.radians(22.5))
    r_px = torch.sqrt((xs - 32) ** 2 + (ys - 32) ** 2)
    extent = torch.where(m > 0, r_px, torch.zeros_like(r_px)).amax((1, 2))
    assert (extent <= focal * math.tan(math.asin(0.75 / 2.5)) + 1).all()
    assert (extent >= focal * math.tan(math.asin(0.45 / 2.5))).all()


def test_front_features_face_minus_y():
    out = render_object(ObjectSpec("snowman"), cams_at(0.0, 180.0), size=96)
    nose = count(out.images, "orange")
    assert nose[0] >= 6 and nose[1] == 0
    janus = render_object(ObjectSpec("snowman", janus=True), cams_at(0.0, 180.0), size=96)
    assert (count(janus.images, "orange") >= 6).all()
    house = render_object(ObjectSpec("house", "red"), cams_at(0.0, 180.0), size=64)
    windows = count(house.images, "glass")
    assert windows[0] >= 10 and windows[1] == 0
    janus_house = render_object(ObjectSpec("house", "red", janus=True), cams_at(0.0, 180.0), size=64)
    assert (count(janus_house.images, "glass") >= 10).all()


def test_yaw_turns_the_object_about_z():
    turned = render_object(ObjectSpec("house", "green", yaw=90.0), cams_at(90.0), size=32)
    upright = render_object(ObjectSpec("house", "green"), cams_at(0.0), size=32)
    assert (turned.images - upright.images).abs().max() < 0.02


@pytest.mark.parametrize("colour", COLOUR_NAMES)
def test_foreground_colour_matches_its_name(colour):
    for shape in ("cube", "sphere"):
        out = render_object(ObjectSpec(shape, colour), cams_at(0.0, 120.0, -100.0), size=32)
        fg = out.images.permute(0, 2, 3, 1)[out.masks[:, 0] == 1]
        mean = fg.mean(0)
        # Nearest named albedo up to the shading factor (ambient 0.35 … full light 1.0).
        errors = {}
        for name, rgb in COLOURS.items():
            a = torch.tensor(rgb)
            k = float((mean @ a) / (a @ a))
            errors[name] = float((mean - min(max(k, 0.3), 1.0) * a).norm())
        assert min(errors, key=errors.get) == colour, (shape, colour, mean, errors)


def test_view_bias_of_sampled_cameras():
    sampler = WorldConfig().setup()
    gen = torch.Generator().manual_seed(0)
    az = sampler.sample_azimuths(torch.ones(4000, dtype=torch.bool), gen)
    views = [view_of(0.0, float(a)) for a in az]
    freq = {v: views.count(v) / len(views) for v in (View.FRONT, View.SIDE, View.BACK)}
    assert abs(freq[View.FRONT] - 0.60) < 0.03 and abs(freq[View.SIDE] - 0.25) < 0.03
    assert abs(freq[View.BACK] - 0.15) < 0.03
    uniform = sampler.sample_azimuths(torch.zeros(4000, dtype=torch.bool), gen)
    assert abs((uniform.abs() <= 45).float().mean() - 0.25) < 0.03
    assert abs((uniform.abs() > 135).float().mean() - 0.25) < 0.03


def test_captions_labels_and_cameras_agree():
    sampler = WorldConfig(size=8, view_suffix_prob=1.0).setup()
    b = sampler.sample_batch(64, torch.Generator().manual_seed(1))
    for i, spec in enumerate(b.specs):
        view = view_of(float(b.elevation[i]), float(b.azimuth[i]))
        assert b.views[i] is view and b.captions[i] == caption_of(spec) + view.suffix
        # Object-frame azimuth = camera azimuth − object yaw.
        delta = (float(b.cams.azimuth[i]) - spec.yaw - float(b.azimuth[i]) + 180) % 360 - 180
        assert abs(delta) < 1e-3
        assert bool(b.front_visible[i]) == (spec.has_front and abs(float(b.azimuth[i])) < 90)
        assert (
            CLASS_NAMES[int(b.class_idx[i])] == spec.shape
            and COLOUR_NAMES[int(b.colour_idx[i])] == spec.colour
        )
    assert not b.front_visible[~b.has_front].any()
    bare = (
        WorldConfig(size=8, view_suffix_prob=0.0).setup().sample_batch(16, torch.Generator().manual_seed(1))
    )
    assert all(c == caption_of(s) for c, s in zip(bare.captions, bare.specs))
    half = WorldConfig(size=4).setup().sample_batch(200, torch.Generator().manual_seed(2))
    assert 0.35 < sum(c.endswith(" view") for c in half.captions) / 200 < 0.65


def test_caption_wording_and_vocabulary_cover_every_caption():
    assert caption_of(ObjectSpec("cube", "red")) == "a red cube"
    assert caption_of(ObjectSpec("cone", "orange")) == "an orange cone"
    assert caption_of(ObjectSpec("snowman")) == "a snowman"
    assert caption_of(ObjectSpec("house", "blue"), View.FRONT) == "a blue house, front view"
    assert caption_words("a snowman, back view") == ["a", "snowman", ",", "back", "view"]
    vocab = set(vocabulary())
    for shape in CLASS_NAMES:
        for colour in ["white"] if shape == "snowman" else COLOUR_NAMES:
            for view in (None, *View):
                assert set(caption_words(caption_of(ObjectSpec(shape, colour), view))) <= vocab


def test_invalid_specs_and_configs_are_refused():
    with pytest.raises(ValueError, match="janus"):
        ObjectSpec("cube", "red", janus=True)
    with pytest.raises(ValueError, match="snowman"):
        ObjectSpec("snowman", "red")
    with pytest.raises(ValueError, match="unknown shape"):
        ObjectSpec("dragon")
    with pytest.raises(ValueError, match="classes"):
        WorldConfig(classes=("cube", "dragon")).setup()
    with pytest.raises(ValueError, match="cameras"):
        render_scenes([ObjectSpec("cube")], turntable(2))
