import pytest
import torch

from engine.cameras import CameraConfig, View, orbit_cameras, view_of


def test_front_camera_sits_on_negative_y_and_looks_at_origin():
    cams = orbit_cameras(torch.zeros(1), torch.zeros(1), torch.tensor([2.0]), torch.tensor([45.0]))
    eye = cams.c2w[0, :3, 3]
    assert torch.allclose(eye, torch.tensor([0.0, -2.0, 0.0]), atol=1e-6)
    forward = -cams.c2w[0, :3, 2]
    assert torch.allclose(forward, torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(cams.c2w[0, :3, 1], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # image up = world up
    right = orbit_cameras(torch.zeros(1), torch.tensor([90.0]), torch.tensor([2.0]), torch.tensor([45.0]))
    assert torch.allclose(right.c2w[0, :3, 3], torch.tensor([2.0, 0.0, 0.0]), atol=1e-5)


@pytest.mark.parametrize(
    "el,az,view",
    [
        (0, 0, View.FRONT),
        (0, 45, View.FRONT),
        (0, -44, View.FRONT),
        (0, 46, View.SIDE),
        (0, -90, View.SIDE),
        (0, 135, View.BACK),
        (0, -180, View.BACK),
        (0, 179, View.BACK),
        (61, 0, View.OVERHEAD),
        (60, 180, View.BACK),
    ],
)
def test_view_thresholds(el, az, view):
    assert view_of(el, az) is view


def test_sampler_is_reproducible_and_in_range():
    cfg = CameraConfig()
    s = cfg.setup()
    a = s.sample(64, torch.Generator().manual_seed(3))
    b = s.sample(64, torch.Generator().manual_seed(3))
    assert torch.equal(a.c2w, b.c2w)
    assert a.elevation.min() >= cfg.elevation_range[0] and a.elevation.max() <= cfg.elevation_range[1]
    assert a.radius.min() >= cfg.radius_range[0] and a.radius.max() <= cfg.radius_range[1]
    assert torch.allclose(a.c2w[:, :3, 3].norm(dim=-1), a.radius, atol=1e-5)
    prompts = s.prompts("a snowman", a)
    assert all(p.startswith("a snowman, ") and p.endswith(" view") for p in prompts)
    assert len(set(prompts)) >= 3


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError, match="first value"):
        CameraConfig(fov_range=(60.0, 40.0)).setup()
    with pytest.raises(ValueError, match="radius_range must be > 1.73"):  # outside the scene box
        CameraConfig(radius_range=(1.0, 2.0)).setup()
