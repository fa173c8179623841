"""The views every evaluation metric reads: a turntable of the generated NeRF and of the true world object.

Both are seen the way the judge's training images are: cameras on a circle at a fixed elevation (the
engine's preview distance 2.5 and field of view 45°), the world's key light fixed in camera space
(:data:`engine.world.render.KEY_LIGHT`) with the world's ambient share, over the engine's grey background.
Azimuth 0 looks at the object's front (the world's front faces −Y, see :mod:`engine.cameras`), so view
``k`` of ``n`` sits at azimuth ``360° · k / n``.

**Framing.** The judge knows objects at the world's sizes (scale 0.75–1.05); generated assets often come
out smaller and off-centre, and at half size the judge misreads even true objects (a true sphere as a
pyramid, a true house as two-faced). So by default (``ViewConfig.frame``) each object is framed like its
true object: a first turntable gives the visible surface points p = o + t·d (every pixel with coverage
> ½ at its depth t); the object's centre c is the middle of their 2–98 % box and its radius R the 98th
percentile of ‖p − c‖. The cameras are then aimed at c from the same distance, with the field of view
narrowed so that the object appears as large as the true object does: tan(fov′/2) = tan(fov/2) · R / R_true.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from engine.cameras import CameraBatch, look_at
from engine.world.scene import CLASS_NAMES, COLOUR_NAMES, ObjectSpec

Render = Callable[[CameraBatch], tuple[Tensor, Tensor, Tensor]]
"""cameras → (rgb [V, 3, H, W], coverage [V, 1, H, W], depth [V, 1, H, W]) of one object."""


@dataclass
class ViewConfig:
    """The evaluation turntable (the same cameras for the NeRF and the ground truth)."""

    n: int = 16
    """Views around the object, evenly spaced in azimuth from 0° (the front)."""
    elevation: float = 15.0
    """Camera elevation in degrees (the judge's training cameras span −10° … 60°)."""
    size: int = 64
    """Image side in pixels (the judge reads 64 × 64)."""
    radius: float = 2.5
    """Camera distance to the object's centre (the origin without framing), scene units."""
    fov: float = 45.0
    """Vertical field of view in degrees."""
    frame: bool = True
    """Aim at each object's centre and zoom so it appears as large as its true object (see the module doc)."""

    def validate(self) -> None:
        if self.n < 2 or self.size < 8:
            raise ValueError(f"views need n >= 2 and size >= 8 (got n={self.n}, size={self.size})")

    def cameras(self, centre: Float[Tensor, "3"] | None = None, zoom: float = 1.0) -> CameraBatch:
        """The ``n`` turntable cameras around ``centre`` (default the origin), the field of view scaled by
        ``zoom`` in tan(fov/2). Azimuths in degrees on ``.azimuth``, wrapped to [−180, 180)."""
        az = torch.arange(self.n, dtype=torch.float32) * (360.0 / self.n)
        el = torch.full((self.n,), math.radians(self.elevation))
        a = torch.deg2rad(az)
        offset = self.radius * torch.stack([el.cos() * a.sin(), -el.cos() * a.cos(), el.sin()], -1)
        target = torch.zeros(3) if centre is None else centre.float()
        eye = target + offset
        fov = 2.0 * math.atan(math.tan(math.radians(self.fov) / 2.0) * zoom)
        return CameraBatch(
            look_at(eye, target.expand_as(eye)),
            torch.full((self.n,), fov),
            torch.full((self.n,), float(self.elevation)),
            (az + 180.0) % 360.0 - 180.0,
            torch.full((self.n,), float(self.radius)),
        )


@dataclass
class Views:
    """Renders of one object from the evaluation turntable."""

    rgb: Float[Tensor, "V 3 H W"]
    """RGB in [0, 1] over the background."""
    mask: Float[Tensor, "V 1 H W"]
    """Foreground coverage in [0, 1] (NeRF opacity, or the world's hit fraction per pixel)."""
    azimuth: Float[Tensor, " V"]
    """Degrees in [−180, 180); 0 faces the object's front."""
    framing: dict[str, Any] | None = None
    """centre [3], radius R and zoom of the framing (None: the unframed turntable)."""


@dataclass
class Extent:
    """Where an object is and how big, from its visible surface."""

    centre: Float[Tensor, "3"]
    radius: float


def object_extent(
    cams: CameraBatch, mask: Float[Tensor, "V 1 H W"], depth: Float[Tensor, "V 1 H W"]
) -> Extent | None:
    """Centre (middle of the 2–98 % box) and radius (98th percentile of the distance to it) of the surface
    points o + t·d of every pixel with coverage > ½; None when fewer than 16 pixels are covered."""
    from engine.render.rays import camera_rays

    origins, dirs = camera_rays(cams.to("cpu"), mask.shape[-1])
    fg = mask[:, 0].cpu() > 0.5
    if int(fg.sum()) < 16:
        return None
    pts = origins[fg] + depth[:, 0].cpu()[fg][:, None] * dirs[fg]
    lo, hi = torch.quantile(pts, 0.02, dim=0), torch.quantile(pts, 0.98, dim=0)
    centre = (lo + hi) / 2
    return Extent(centre, float(torch.quantile((pts - centre).norm(dim=-1), 0.98)))


def framed_views(render: Render, views: ViewConfig, reference_radius: float | None = None) -> Views:
    """Render an object's turntable; with ``views.frame``, render again aimed at its centre and zoomed so
    its radius appears as ``reference_radius`` does unzoomed (None: its own radius, i.e. only centred).
    The zoom is clamped to [0.25, 2.5]; an object with (almost) no coverage is left unframed."""
    cams = views.cameras()
    rgb, mask, depth = render(cams)
    if not views.frame:
        return Views(rgb, mask, cams.azimuth)
    ext = object_extent(cams, mask, depth)
    if ext is None:
        return Views(rgb, mask, cams.azimuth)
    zoom = 1.0 if reference_radius is None else min(max(ext.radius / reference_radius, 0.25), 2.5)
    cams = views.cameras(ext.centre, zoom)
    rgb, mask, _ = render(cams)
    framing = {"centre": [round(float(x), 4) for x in ext.centre], "radius": ext.radius, "zoom": zoom}
    return Views(rgb, mask, cams.azimuth, framing)


def spec_for_prompt(prompt: str, scale: float = 0.9) -> ObjectSpec:
    """The world object a prompt names: "a red cube" → cube/red, "a snowman" → snowman, "a blue house" →
    house with a blue body; view suffixes (", front view") are ignored. Facing the front (yaw 0) at
    ``scale`` (0.9: the middle of the world's scale range 0.75–1.05)."""
    words = prompt.lower().replace(",", " ").split()
    cls = next((w for w in words if w in CLASS_NAMES), None)
    colour = "white" if cls == "snowman" else next((w for w in words if w in COLOUR_NAMES), None)
    if cls is None or colour is None:
        raise ValueError(
            f"cannot read a world object from {prompt!r}: name one of {', '.join(CLASS_NAMES)} "
            f"and (except a snowman) one of {', '.join(COLOUR_NAMES)}"
        )
    return ObjectSpec(cls, colour, scale=scale)


@torch.no_grad()
def nerf_views(trainer, views: ViewConfig, reference_radius: float | None = None) -> Views:
    """The trainer's NeRF (an :class:`engine.train.Trainer`'s) from the evaluation turntable, framed to
    ``reference_radius`` (the true object's, :func:`true_radius`), Lambertian-shaded with the world's
    camera-space key light and ambient, deterministic samples."""
    from engine.render.renderer import Shading
    from engine.world.render import AMBIENT, KEY_LIGHT

    key = torch.nn.functional.normalize(torch.tensor(KEY_LIGHT), dim=0)
    renderer = trainer.renderer

    def render(cams: CameraBatch) -> tuple[Tensor, Tensor, Tensor]:
        light = (cams.c2w[:, :3, :3] @ key).to(trainer.device)
        ambient, renderer.cfg.ambient = renderer.cfg.ambient, AMBIENT
        try:
            out = renderer.render_chunked(
                trainer.field, cams.to(trainer.device), views.size, Shading.LAMBERTIAN, light
            )
        finally:
            renderer.cfg.ambient = ambient
        # Contiguous, as a cached run loaded from disk is: convolutions (the judge) then give the same bits.
        return tuple(
            x.float().cpu().contiguous() for x in (out.rgb.clamp(0, 1), out.opacity.clamp(0, 1), out.depth)
        )

    return framed_views(render, views, reference_radius)


def world_render(spec: ObjectSpec, size: int) -> Render:
    """The :data:`Render` of a world object (sphere-traced, 2 × 2 supersampled, the world's key light)."""
    from engine.world.render import render_object

    def render(cams: CameraBatch) -> tuple[Tensor, Tensor, Tensor]:
        out = render_object(spec, cams, size=size)
        return out.images, out.masks, out.depth

    return render


def true_radius(spec: ObjectSpec, views: ViewConfig) -> float:
    """The radius R_true of the true object as :func:`object_extent` sees it on the unframed turntable."""
    cams = views.cameras()
    _, mask, depth = world_render(spec, views.size)(cams)
    ext = object_extent(cams, mask, depth)
    if ext is None:
        raise ValueError(f"the true {spec.shape} covers no pixels at size {views.size}")
    return ext.radius


def world_views(spec: ObjectSpec, views: ViewConfig) -> Views:
    """The true world object ``spec`` from the evaluation turntable (sphere-traced, 2 × 2 supersampled),
    framed like the assets (centred, no zoom)."""
    return framed_views(world_render(spec, views.size), views)


def asset_views(asset: Path | str, size: int = 64) -> torch.Tensor:
    """An exported .glb seen the way the judge's training images are: 8 azimuths at 15° elevation (the
    engine's preview distance and fov), the world's key light fixed in
    camera space and its ambient, the object's bounding box centred at the origin as world objects are.
    Rendered at 2× and area-downsampled. [8, 3, size, size]."""
    import numpy as np
    import trimesh
    from PIL import Image

    from engine.cameras import turntable
    from engine.export.turntable import render_view
    from engine.world.render import KEY_LIGHT

    mesh = trimesh.load(str(asset), force="mesh")
    # glTF is Y-up (x, z, −y of the engine's Z-up frame): back to the engine frame.
    pos = np.asarray(mesh.vertices, dtype=np.float64) @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    pos -= (pos.min(0) + pos.max(0)) / 2
    normals = np.asarray(mesh.vertex_normals) @ np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], float)
    tex = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"), dtype=np.float32) / 255.0
    uvs = np.asarray(mesh.visual.uv, dtype=np.float64)
    cams = turntable(8, elevation=15.0)
    out = []
    for c2w in cams.c2w.double().numpy():
        fov = float(torch.rad2deg(cams.fov[0]))
        img = render_view(pos, np.asarray(mesh.faces), normals, uvs, tex, c2w, fov, 2 * size, KEY_LIGHT)
        small = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize(
            (size, size), Image.BOX
        )
        out.append(np.asarray(small))
    return torch.tensor(np.stack(out), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0


__all__ = [
    "asset_views",
    "Extent",
    "ViewConfig",
    "Views",
    "framed_views",
    "nerf_views",
    "object_extent",
    "spec_for_prompt",
    "true_radius",
    "world_render",
    "world_views",
]
