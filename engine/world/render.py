"""Batched sphere tracing of world objects, Lambertian shading, supersampled antialiasing.

Pixels line up with the engine's renderer: rays come from :func:`engine.render.rays.camera_rays`,
and the background is exactly the engine's default background colour (0.7 grey), with no ground plane.

Pipeline for B images, each its own object (:class:`~engine.world.scene.ObjectSpec`):

1. rays at ``size × supersample`` are mapped into each object's local frame (inverse yaw, 1/scale);
2. rays that miss the object's bounding ball are dropped; the rest are grouped by shape so every SDF
   call sees one shape only, and traced from the ball's entry point (at most ``steps`` steps; finished
   rays — hit or past the ball's exit — are compacted away as they finish);
3. at the hit points: normals by central differences of the SDF, the albedo of the nearest part;
4. shading ``albedo · (ambient + (1 − ambient) · max(0, n·l))``. The key light is fixed in **camera
   space** (:data:`KEY_LIGHT`, from the upper front-left of the viewer), so every view of an object is
   lit alike and darkness never signals "back view"; callers may jitter it per image;
5. area-average downsampling: ``image = mean(fg) + (1 − coverage) · background``. Pixels no ray hit
   therefore equal the background colour exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from engine.cameras import CameraBatch
from engine.render.rays import camera_rays
from engine.render.renderer import RendererConfig
from engine.world.scene import BOUND_RADIUS, CLASS_NAMES, SHAPES, ObjectSpec, Shape

BACKGROUND: tuple[float, float, float] = RendererConfig().background_color
"""The engine's default background colour; every world image uses it."""
KEY_LIGHT: tuple[float, float, float] = (-0.45, 0.55, 0.70)
"""Direction *towards* the key light in camera space (x right, y up, z towards the viewer)."""
AMBIENT = 0.35
"""Ambient share of the light; the rest is the key light's Lambertian term."""

_ALBEDO = {name: shape.albedo_table() for name, shape in SHAPES.items()}


@dataclass
class WorldRender:
    """Rendered images of world objects."""

    images: Float[Tensor, "B 3 H W"]
    """RGB in [0, 1] over the plain background."""
    masks: Float[Tensor, "B 1 H W"]
    """Foreground coverage in [0, 1] (the fraction of a pixel's subsamples that hit the object)."""
    depth: Float[Tensor, "B 1 H W"]
    """Mean ray distance to the surface over the pixel's hit subsamples (0 where nothing is hit)."""


def sphere_trace(
    shape: Shape,
    origins: Float[Tensor, "N 3"],
    dirs: Float[Tensor, "N 3"],
    t_near: Float[Tensor, " N"],
    t_far: Float[Tensor, " N"],
    janus: Bool[Tensor, " N"],
    steps: int = 48,
    eps: float = 1.5e-3,
) -> tuple[Bool[Tensor, " N"], Float[Tensor, " N"]]:
    """March rays along ``shape``'s SDF (local frame) → (hit, t). Finished rays are dropped as they finish."""
    n = origins.shape[0]
    hit = torch.zeros(n, dtype=torch.bool)
    t_hit = torch.zeros(n)
    idx = torch.arange(n)
    o, d, t, tf, jn = origins, dirs, t_near.clone(), t_far, janus
    dist = torch.full((n,), math.inf)
    for _ in range(steps):
        if idx.numel() == 0:
            break
        dist = shape.sdf(torch.addcmul(o, t[:, None], d), jn)
        t = t + dist
        converged = dist < eps
        done = converged | (t > tf)
        if bool(done.any()):
            hit[idx[converged]] = True
            t_hit[idx[converged]] = t[converged]
            keep = ~done
            idx, o, d, t, tf, jn, dist = idx[keep], o[keep], d[keep], t[keep], tf[keep], jn[keep], dist[keep]
    # Grazing rays that ran out of steps close to the surface count as hits.
    close = dist < 20 * eps
    hit[idx[close]] = True
    t_hit[idx[close]] = t[close]
    return hit, t_hit


def sdf_normals(
    shape: Shape, p: Float[Tensor, "N 3"], janus: Bool[Tensor, " N"], h: float = 1e-3
) -> Float[Tensor, "N 3"]:
    """Unit normals by central differences of the SDF (one batched call of 6N points)."""
    offsets = torch.eye(3) * h
    pts = torch.cat([p[None] + offsets[:, None], p[None] - offsets[:, None]]).reshape(-1, 3)
    dist = shape.sdf(pts, janus.repeat(6)).reshape(2, 3, -1)
    return F.normalize((dist[0] - dist[1]).T, dim=-1)


def _yaw_matrices(yaw_deg: Float[Tensor, " B"]) -> Float[Tensor, "B 3 3"]:
    """Rotations about +Z (local → world)."""
    a = torch.deg2rad(yaw_deg)
    c, s, zero, one = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=-1).reshape(-1, 3, 3)


@torch.no_grad()
def render_scenes(
    specs: Sequence[ObjectSpec],
    cams: CameraBatch,
    size: int = 64,
    supersample: int = 2,
    light_dirs: Float[Tensor, "B 3"] | None = None,
    steps: int = 48,
) -> WorldRender:
    """Render ``specs[i]`` seen by camera ``i``; ``light_dirs`` are camera-space (default :data:`KEY_LIGHT`)."""
    b = len(specs)
    if len(cams) != b:
        raise ValueError(f"got {b} objects but {len(cams)} cameras; pass one camera per object")
    if size < 1 or supersample < 1:
        raise ValueError(f"size ({size}) and supersample ({supersample}) must be positive")
    cams = cams.to("cpu")
    hi = size * supersample
    n_pix = hi * hi
    if light_dirs is None:
        light_dirs = torch.tensor(KEY_LIGHT).expand(b, 3)
    light_dirs = F.normalize(light_dirs.float(), dim=-1)

    yaw = torch.tensor([s.yaw for s in specs], dtype=torch.float32)
    scale = torch.tensor([s.scale for s in specs], dtype=torch.float32)
    shape_of = torch.tensor([s.class_idx for s in specs])
    colour_of = torch.tensor([s.colour_idx for s in specs])
    janus_of = torch.tensor([s.janus for s in specs])

    # Local frame: p_local = R(yaw)ᵀ p / scale; the row-vector form is p @ R. Distances scale by 1/scale.
    rot = _yaw_matrices(yaw)
    origins, dirs = camera_rays(cams, hi)
    o_loc = (origins[:, 0, 0, None, :] @ rot)[:, 0] / scale[:, None]  # [B, 3]: one eye per image
    d_loc = dirs.reshape(b, n_pix, 3) @ rot  # [B, P, 3], unit length
    light_loc = (torch.einsum("bij,bj->bi", cams.c2w[:, :3, :3], light_dirs)[:, None] @ rot)[:, 0]

    # Bounding ball |o + t d| = R: t = −o·d ± sqrt((o·d)² − |o|² + R²).
    od = (d_loc @ o_loc[:, :, None])[..., 0]  # [B, P]
    disc = od * od - (o_loc * o_loc).sum(-1, keepdim=True) + BOUND_RADIUS**2
    root = disc.clamp(min=0.0).sqrt()
    t_near, t_far = (-od - root).clamp(min=0.0), -od + root
    candidates = ((disc > 0) & (t_far > 0)).reshape(-1).nonzero()[:, 0]

    rgb = torch.zeros(b * n_pix, 3)
    cover = torch.zeros(b * n_pix)
    depth = torch.zeros(b * n_pix)
    img_of_ray = candidates // n_pix
    for k, name in enumerate(CLASS_NAMES):
        sel = candidates[shape_of[img_of_ray] == k]
        if sel.numel() == 0:
            continue
        shape, img = SHAPES[name], sel // n_pix
        o, d, jn = o_loc[img], d_loc.reshape(-1, 3)[sel], janus_of[img]
        hit, t = sphere_trace(shape, o, d, t_near.reshape(-1)[sel], t_far.reshape(-1)[sel], jn, steps)
        sel, img, o, d, jn, t = sel[hit], img[hit], o[hit], d[hit], jn[hit], t[hit]
        p = torch.addcmul(o, t[:, None], d)
        normal = sdf_normals(shape, p, jn)
        part = shape.parts(p, jn).argmin(dim=-1)
        albedo = _ALBEDO[name][colour_of[img], part]
        lambert = (normal * light_loc[img]).sum(-1).clamp(min=0.0)
        rgb[sel] = albedo * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]
        cover[sel] = 1.0
        depth[sel] = t * scale[img]  # world units

    def down(x: Tensor) -> Tensor:
        img = x.reshape(b, hi, hi, -1).permute(0, 3, 1, 2)
        return F.avg_pool2d(img, supersample) if supersample > 1 else img

    fg, coverage, depth_sum = down(rgb), down(cover), down(depth)
    bg = torch.tensor(BACKGROUND, dtype=torch.float32)[None, :, None, None]
    images = (fg + (1.0 - coverage) * bg).clamp(0.0, 1.0)
    mean_depth = torch.where(coverage > 0, depth_sum / coverage.clamp(min=1e-8), torch.zeros_like(depth_sum))
    return WorldRender(images.contiguous(), coverage.contiguous(), mean_depth.contiguous())


def render_object(
    spec: ObjectSpec,
    cams: CameraBatch,
    size: int = 64,
    supersample: int = 2,
    light_dir: tuple[float, float, float] = KEY_LIGHT,
) -> WorldRender:
    """One object seen from every camera in ``cams`` (e.g. :func:`engine.cameras.turntable`), for evaluation."""
    light = torch.tensor(light_dir, dtype=torch.float32).expand(len(cams), 3)
    return render_scenes([spec] * len(cams), cams, size, supersample, light)
