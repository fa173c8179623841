"""Pinhole ray generation and ray/box intersection."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from engine.cameras import CameraBatch


def camera_rays(cams: CameraBatch, size: int) -> tuple[Float[Tensor, "B H W 3"], Float[Tensor, "B H W 3"]]:
    """Origins and unit directions through pixel centres of square ``size``×``size`` images.

    Focal length f = (size / 2) / tan(fov / 2); pixel (i, j) (row, column) looks along
    (x, y, z)_cam = ((j + ½ − size/2) / f, −(i + ½ − size/2) / f, −1), then rotated by c2w.
    """
    device = cams.c2w.device
    coords = (torch.arange(size, dtype=torch.float32, device=device) + 0.5) - size / 2
    focal = (size / 2) / torch.tan(cams.fov / 2)  # [B]
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")  # [H, W]
    dirs = torch.stack(
        [
            xs[None] / focal[:, None, None],
            -ys[None] / focal[:, None, None],
            -torch.ones(len(cams), size, size, device=device),
        ],
        dim=-1,
    )  # [B, H, W, 3]
    rot = cams.c2w[:, :3, :3]
    dirs = torch.einsum("bij,bhwj->bhwi", rot, dirs)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cams.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def intersect_box(
    origins: Float[Tensor, "R 3"], dirs: Float[Tensor, "R 3"], bound: float
) -> tuple[Float[Tensor, " R"], Float[Tensor, " R"], Tensor]:
    """Slab test against [-bound, bound]^3 → (t_near, t_far, hit mask); t_near is clamped at 0."""
    inv = 1.0 / torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)
    t0 = (-bound - origins) * inv
    t1 = (bound - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    return t_near, t_far, t_far > t_near + 1e-6
