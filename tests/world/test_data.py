"""World sampling: determinism, the documented view bias, captions that match the engine's view thresholds."""

import torch

from engine.cameras import view_of
from engine.render.renderer import RendererConfig
from engine.world.data import WorldConfig, WorldSampler, caption_of, vocabulary
from engine.world.scene import CLASS_NAMES, ObjectSpec


def test_same_generator_state_same_batch():
    s = WorldSampler(WorldConfig(size=16))
    a = s.sample_batch(12, torch.Generator().manual_seed(4))
    b = s.sample_batch(12, torch.Generator().manual_seed(4))
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    c = s.sample_batch(12, torch.Generator().manual_seed(5))
    assert a.captions != c.captions


def test_view_bias_of_objects_with_a_front():
    s = WorldSampler()
    az = s.sample_azimuths(torch.ones(20000, dtype=torch.bool), torch.Generator().manual_seed(0)).abs()
    front, back = (az <= 45).float().mean(), (az > 135).float().mean()
    assert abs(front - 0.60) < 0.02 and abs(back - 0.15) < 0.02 and abs(1 - front - back - 0.25) < 0.02
    uniform = s.sample_azimuths(torch.zeros(20000, dtype=torch.bool), torch.Generator().manual_seed(0)).abs()
    assert abs((uniform <= 45).float().mean() - 0.25) < 0.02


def test_captions_labels_and_vocabulary():
    s = WorldSampler(WorldConfig(size=16, view_suffix_prob=1.0))
    b = s.sample_batch(48, torch.Generator().manual_seed(1))
    words = set(vocabulary())
    for i, cap in enumerate(b.captions):
        spec = b.specs[i]
        assert cap == caption_of(spec) + view_of(float(b.elevation[i]), float(b.azimuth[i])).suffix
        assert set(cap.replace(",", " , ").split()) <= words
        assert CLASS_NAMES[int(b.class_idx[i])] == spec.shape
        assert bool(b.front_visible[i]) == (bool(b.has_front[i]) and abs(float(b.azimuth[i])) < 90)
    assert caption_of(ObjectSpec("cube", "orange")) == "an orange cube"
    assert caption_of(ObjectSpec("snowman")) == "a snowman"


def test_background_is_the_engine_background_and_objects_are_centred():
    b = WorldSampler(WorldConfig(size=32)).sample_batch(16, torch.Generator().manual_seed(2))
    bg = torch.tensor(RendererConfig().background_color)
    empty = b.masks[:, 0] == 0
    assert torch.allclose(b.images.permute(0, 2, 3, 1)[empty], bg.expand(int(empty.sum()), 3), atol=1e-6)
    assert (b.masks[:, 0, 0, :] == 0).all() and (b.masks[:, 0, :, 0] == 0).all()  # nothing touches the border
    m = b.masks[:, 0]
    coords = torch.arange(32.0) + 0.5
    cy = (m.sum(2) * coords).sum(1) / m.sum((1, 2))
    cx = (m.sum(1) * coords).sum(1) / m.sum((1, 2))
    assert ((cx - 16).abs() < 4).all() and ((cy - 16).abs() < 5).all()  # roughly centred silhouettes
