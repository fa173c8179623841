"""Step 8 of the export: a turntable preview of the *exported* mesh (textured, lit), on the CPU.

A small z-buffer rasterizer: ``raster.cover`` gives the covered pixel centres per triangle in screen
space, the nearest fragment per pixel wins, and UVs and normals are interpolated perspective-correctly
(attributes · 1/w interpolate linearly in screen space). The baked texture is sampled bilinearly and shaded
with ambient + Lambert light from above the camera's left shoulder. Cameras follow the engine's convention
(``engine.cameras``): azimuth 0 looks at the front from −Y, growing counter-clockwise seen from above.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.cameras import look_at
from engine.export.bake import uv_to_pixel
from engine.export.raster import cover

BACKGROUND = (0.7, 0.7, 0.7)
"""The renderer's default background, so the turntable compares with the training previews."""
AMBIENT = 0.35


def _bilinear(texture: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample a float [H, W, C] texture at continuous pixel coordinates (texel centres at +0.5), clamped."""
    h, w = texture.shape[:2]
    x = np.clip(xy[:, 0] - 0.5, 0, w - 1)
    y = np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render_view(
    positions: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
    texture: np.ndarray,
    c2w: np.ndarray,
    fov_deg: float,
    size: int,
    light_camera: tuple[float, float, float] = (-0.4, 0.6, 1.0),
) -> np.ndarray:
    """One [size, size, 3] float image of a textured mesh seen by an OpenGL-convention camera, lit by
    ambient + Lambert from ``light_camera`` (a direction in camera space: x right, y up, z backwards)."""
    rot, eye = c2w[:3, :3], c2w[:3, 3]
    cam = (positions - eye) @ rot  # camera coordinates; the camera looks down −z
    depth = np.maximum(-cam[:, 2], 1e-6)
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    screen = np.stack(
        [(cam[:, 0] / depth * f + 1) * 0.5 * size, (1 - cam[:, 1] / depth * f) * 0.5 * size], -1
    )
    in_front = (cam[faces, 2] < 0).all(1)
    frags = cover(screen[faces[in_front]], size, size)
    tri = np.nonzero(in_front)[0][frags.triangle]
    inv_w = 1.0 / depth[faces[tri]]  # [K, 3]
    wb = frags.bary * inv_w
    z = 1.0 / wb.sum(1)
    order = np.lexsort((z, frags.pixel))
    pix = frags.pixel[order]
    first = np.ones(len(pix), bool)
    first[1:] = pix[1:] != pix[:-1]
    pix, tri, wb = pix[first], tri[order][first], wb[order][first]
    wb = wb / wb.sum(1, keepdims=True)
    uv = np.einsum("kc,kcd->kd", wb, uvs[faces[tri]])
    n = np.einsum("kc,kcd->kd", wb, normals[faces[tri]])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = rot @ np.asarray(light_camera) / np.linalg.norm(light_camera)
    shade = AMBIENT + (1 - AMBIENT) * np.clip(n @ light, 0.0, None)
    albedo = _bilinear(texture, uv_to_pixel(uv, texture.shape[0]))
    img = np.tile(np.asarray(BACKGROUND, np.float32), (size * size, 1))
    img[pix] = albedo * shade[:, None]
    return img.reshape(size, size, 3)


def turntable(
    positions: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
    texture: np.ndarray,
    views: int = 8,
    size: int = 256,
    elevation: float = 20.0,
    fov_deg: float = 35.0,
) -> np.ndarray:
    """``views`` images around a Z-up mesh (any units), tiled 4 per row, as one uint8 [rows·S, cols·S, 3]."""
    lo, hi = positions.min(0), positions.max(0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(positions - centre, axis=1).max()), 1e-6)
    dist = radius / math.sin(math.radians(fov_deg) / 2) * 1.02
    tex = texture.astype(np.float32) / 255.0
    el = math.radians(elevation)
    images = []
    for i in range(views):
        az = math.radians(360.0 * i / views)
        offset = dist * np.array([math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)])
        eye = torch.as_tensor(centre + offset, dtype=torch.float64)[None]
        c2w = look_at(eye, torch.as_tensor(centre, dtype=torch.float64)[None])[0].numpy()
        images.append(render_view(positions, faces, normals, uvs, tex, c2w, fov_deg, size))
    cols = min(views, 4)
    rows = -(-views // cols)
    sheet = np.tile(np.asarray(BACKGROUND, np.float32), (rows * size, cols * size, 1))
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet[r * size : (r + 1) * size, c * size : (c + 1) * size] = img
    return (np.clip(sheet, 0, 1) * 255 + 0.5).astype(np.uint8)
