"""Batched sphere tracing of world objects, Lambertian shading, supersampled antialiasing.

Pixels line up with the engine's renderer: rays come from :func:`engine.render.rays.camera_rays`,
and the background is exactly the engine's default background colour (0.7 grey), with no ground plane.

Pipeline for B images, each its own object (:class:`~engine.world.scene.ObjectSpec`):

1. rays at ``size × supersample``; those that miss the object's bounding ball are dropped;
2. the rest are grouped by shape, so every SDF call sees one shape only, mapped into the object's
   local frame (inverse yaw, 1/scale) and sphere-traced from the ball's entry point (at most
   ``steps`` steps; finished rays — hit or past the ball's exit — are compacted away). Points are
   [3, N] (one contiguous row per coordinate): the SDF maths runs ~3× faster than on [N, 3];
3. at the hit points: normals by central differences of the SDF, the albedo of the nearest part;
4. shading ``albedo · (ambient + (1 − ambient) · max(0, n·l))``. The key light is fixed in **camera
   space** (:data:`KEY_LIGHT`, from the upper front-left of the viewer), so every view of an object is
   lit alike and darkness never signals "back view"; callers may jitter it per image;
5. area averaging (subsamples summed into their output pixel):
   ``image = mean(fg) + (1 − coverage) · background``, so pixels no ray hit equal the background exactly.

Speed (2-core CPU, ``python -m engine.world --bench``): 64 mixed objects at 64×64 with 2×2 supersampling
in ≈0.18 s, at 32×32 in ≈0.08–0.1 s.
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
HIT_FOOTPRINT = 0.05
"""A ray hits when its SDF distance is below this fraction of its subpixel's footprint (or 1e-3)."""

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
    origins: Float[Tensor, "3 N"],
    dirs: Float[Tensor, "3 N"],
    t_near: Float[Tensor, " N"],
    t_far: Float[Tensor, " N"],
    janus: Bool[Tensor, " N"],
    pixel_angle: Float[Tensor, " N"] | float = 0.0,
    steps: int = 48,
    eps: float = 1e-3,
) -> tuple[Bool[Tensor, " N"], Float[Tensor, " N"]]:
    """March rays along ``shape``'s SDF (local frame, one coordinate per row) → (hit, t).

    ``pixel_angle`` is the angular size of a ray's (sub)pixel: a ray hits once the distance drops below
    ``max(eps, HIT_FOOTPRINT · pixel_angle · t)``, so rays grazing a silhouette stop without crawling
    along it (5% of a subpixel moves no edge visibly). Finished rays are compacted away every other step
    (a finished ray stays finished: hits sit on the surface, misses are past ``t_far``).
    """
    n = origins.shape[1]
    hit = torch.zeros(n, dtype=torch.bool)
    t_hit = torch.zeros(n)
    idx = torch.arange(n)
    tol = torch.as_tensor(pixel_angle, dtype=torch.float32).expand(n) * HIT_FOOTPRINT  # × t = tolerance
    od = torch.cat([origins, dirs])  # [6, N]: compacted together
    t, tf, jn, ha = t_near.clone(), t_far, janus, tol
    dist = torch.full((n,), math.inf)
    for step in range(steps):
        if idx.numel() == 0:
            break
        dist = shape.sdf(torch.addcmul(od[:3], t[None], od[3:]), jn)
        t = t + dist
        if step % 2 == 1 or step == steps - 1:
            converged = dist < torch.clamp(ha * t, min=eps)
            done = converged | (t > tf)
            hit[idx[converged]] = True
            t_hit[idx[converged]] = t[converged]
            keep = (~done).nonzero()[:, 0]
            idx, t, tf, jn, ha, dist = (x[keep] for x in (idx, t, tf, jn, ha, dist))
            od = od[:, keep]
    # Grazing rays that ran out of steps close to the surface count as hits.
    close = dist < torch.clamp(4 * ha * t, min=4 * eps)
    hit[idx[close]] = True
    t_hit[idx[close]] = t[close]
    return hit, t_hit


def sdf_normals(
    shape: Shape, p: Float[Tensor, "3 N"], janus: Bool[Tensor, " N"], h: float = 1e-3
) -> Float[Tensor, "3 N"]:
    """Unit normals by central differences of the SDF (one batched call on 6N points)."""
    n = p.shape[1]
    offsets = torch.cat([torch.eye(3), -torch.eye(3)]) * h  # [6, 3]
    pts = (p[:, None, :] + offsets.T[:, :, None]).reshape(3, 6 * n)
    dist = shape.sdf(pts, janus.repeat(6)).reshape(2, 3, n)
    return F.normalize(dist[0] - dist[1], dim=0)


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

    # Cull in the world frame: the object's bounding ball has radius BOUND_RADIUS·scale about the
    # origin. For |o + t d| = r: t = −o·d ± sqrt((o·d)² − |o|² + r²).
    origins, dirs = camera_rays(cams, hi)
    eye, dirs = origins[:, 0, 0], dirs.reshape(b, n_pix, 3)
    od = (dirs * eye[:, None]).sum(-1)  # [B, P]
    disc = od * od - ((eye * eye).sum(-1) - (BOUND_RADIUS * scale) ** 2)[:, None]
    candidates = ((disc > 0) & (od < 0)).reshape(-1).nonzero()[:, 0]
    od, disc, dirs = od.reshape(-1)[candidates], disc.reshape(-1)[candidates], dirs.reshape(-1, 3)[candidates]

    # Local frame: p_local = R(yaw)ᵀ p / scale, so local distances are world distances / scale.
    yaw_rad = torch.deg2rad(yaw)
    cos, sin = torch.cos(yaw_rad), torch.sin(yaw_rad)
    rot = _yaw_matrices(yaw)
    eye_loc = (eye[:, None] @ rot)[:, 0] / scale[:, None]
    light_world = torch.einsum("bij,bj->bi", cams.c2w[:, :3, :3], light_dirs)
    light_loc = (light_world[:, None] @ rot)[:, 0]
    # Angular size of a subpixel (the same in both frames).
    pixel_angle = 2.0 * torch.tan(cams.fov / 2) / hi

    # Per output pixel: sums over its ss×ss subsamples of (r, g, b, hit, depth), filled by index_add_.
    sums = torch.zeros(b * size * size, 5)
    class_of_ray = shape_of[candidates // n_pix]
    for k, name in enumerate(CLASS_NAMES):
        pick = (class_of_ray == k).nonzero()[:, 0]
        if pick.numel() == 0:
            continue
        shape, sel = SHAPES[name], candidates[pick]
        img = sel // n_pix
        dw, c, s_ = dirs[pick].T, cos[img], sin[img]
        d = torch.stack([c * dw[0] + s_ * dw[1], c * dw[1] - s_ * dw[0], dw[2]])
        o, jn, sc = eye_loc[img].T, janus_of[img], scale[img]
        root = disc[pick].sqrt()
        t_near, t_far = (-od[pick] - root).clamp(min=0.0) / sc, (-od[pick] + root) / sc
        hit, t = sphere_trace(shape, o, d, t_near, t_far, jn, pixel_angle[img], steps)
        sel, img, o, d, jn, t = sel[hit], img[hit], o[:, hit], d[:, hit], jn[hit], t[hit]
        p = torch.addcmul(o, t[None], d)
        normal = sdf_normals(shape, p, jn)
        part = shape.parts(p, jn).argmin(dim=0)
        albedo = _ALBEDO[name][colour_of[img], part]
        lambert = (normal * light_loc[img].T).sum(0).clamp(min=0.0)
        rgb = albedo * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]
        values = torch.cat([rgb, torch.ones_like(t)[:, None], (t * scale[img])[:, None]], dim=1)
        row, col = (sel % n_pix) // hi, sel % hi
        pixel = (img * size + row // supersample) * size + col // supersample
        sums.index_add_(0, pixel, values)

    # Area average: image = mean(foreground) + (1 − coverage) · background, exact where nothing was hit.
    sums = sums.reshape(b, size, size, 5).permute(0, 3, 1, 2)
    n_sub = float(supersample * supersample)
    coverage = sums[:, 3:4] / n_sub
    bg = torch.tensor(BACKGROUND, dtype=torch.float32)[None, :, None, None]
    images = (sums[:, :3] / n_sub + (1.0 - coverage) * bg).clamp(0.0, 1.0)
    depth = torch.where(coverage > 0, sums[:, 4:5] / sums[:, 3:4].clamp(min=1.0), torch.zeros_like(coverage))
    return WorldRender(images.contiguous(), coverage.contiguous(), depth.contiguous())


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
