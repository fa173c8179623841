"""The CPU turntable preview of the exported mesh: the front faces the first view."""

import numpy as np
import torch

from engine.export import MeshExportConfig, export_asset
from tests.export.fields import SpheresField


def front_red_back_blue(x: torch.Tensor) -> torch.Tensor:
    front = (x[:, 1] < 0).float()[:, None]  # the engine's front faces −Y
    return front * torch.tensor([0.9, 0.1, 0.1]) + (1 - front) * torch.tensor([0.1, 0.1, 0.9])


def test_turntable_sheet_shows_the_front_first_and_the_back_halfway(tmp_path):
    from PIL import Image

    field = SpheresField(spheres=(((0.0, 0.0, 0.0), 0.5),), albedo_fn=front_red_back_blue)
    cfg = MeshExportConfig(
        resolution=48, target_faces=3000, texture_size=256, turntable_views=8, turntable_size=64
    )
    result = export_asset(field, cfg, tmp_path / "ball.glb")
    sheet = np.asarray(Image.open(result.paths["turntable"]).convert("RGB")).astype(int)
    assert sheet.shape == (128, 256, 3)  # 8 views of 64², 4 per row
    front, back = sheet[20:44, 20:44], sheet[64 + 20 : 64 + 44, 20:44]  # views 0 (azimuth 0) and 4 (180°)
    assert front[..., 0].mean() > 2 * front[..., 2].mean()
    assert back[..., 2].mean() > 2 * back[..., 0].mean()
    assert (np.abs(sheet[0, 0] - 178) <= 1).all()  # background corner
