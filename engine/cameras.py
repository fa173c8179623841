"""Orbit camera sampling and view-dependent prompts.

World frame: **Z up** (as Blender), the object's *front* faces **−Y** (Blender's "Front" view looks
from −Y towards +Y). A camera at azimuth 0° sits on the −Y axis and sees the front; azimuth grows
counter-clockwise seen from above (90° = camera on +X, the object's right side); elevation is the
angle above the XY plane. Camera-to-world matrices use the OpenGL convention (camera looks down its
−Z axis, +Y is image-up), like nerfstudio and threestudio.

View-dependent prompting follows DreamFusion §3.2: a suffix chosen from the camera's azimuth and
elevation. The built-in prior's captions use the very same thresholds (``view_of``), so its
"front view"/"back view" words mean what the engine means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import torch
from jaxtyping import Float
from torch import Tensor

from engine.configbase import Config, setting


class View(str, Enum):
    """Coarse view classes used for prompt suffixes."""

    FRONT = "front"
    SIDE = "side"
    BACK = "back"
    OVERHEAD = "overhead"

    @property
    def suffix(self) -> str:
        """Text appended to a prompt, e.g. ``", front view"``."""
        return f", {self.value} view"


@dataclass
class CameraConfig(Config):
    """Random orbit cameras around the origin (DreamFusion-style), and view-prompt thresholds."""

    elevation_range: tuple[float, float] = setting((-10.0, 60.0), ge=-90.0, le=90.0)
    """Elevation in degrees above the ground plane, sampled uniformly."""
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    """Azimuth in degrees (0 = front), sampled uniformly."""
    radius_range: tuple[float, float] = setting((2.2, 2.8), gt=math.sqrt(3.0))
    """Camera distance to the origin (scene units; the scene box is [-1, 1]^3)."""
    fov_range: tuple[float, float] = setting((40.0, 55.0), gt=0.0, lt=180.0)
    """Vertical field of view in degrees."""
    front_half_angle: float = setting(45.0, ge=0.0, le=180.0)
    """|azimuth| at or below this is a front view (degrees)."""
    back_half_angle: float = setting(45.0, ge=0.0, le=180.0)
    """|azimuth| at or above 180 minus this is a back view (degrees)."""
    overhead_elevation: float = 60.0
    """Elevation above this is an overhead view, whatever the azimuth (degrees)."""
    view_dependent_prompt: bool = True
    """Append the view suffix (", front view", …) to the prompt for each sampled camera."""

    def check(self) -> None:
        for name in ("elevation_range", "azimuth_range", "radius_range", "fov_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} is ({lo}, {hi}): the first value must not exceed the second")

    def setup(self) -> CameraSampler:
        return CameraSampler(self)


@dataclass
class CameraBatch:
    """A batch of B pinhole cameras."""

    c2w: Float[Tensor, "B 4 4"]
    """Camera-to-world matrices (OpenGL convention)."""
    fov: Float[Tensor, " B"]
    """Vertical field of view, radians."""
    elevation: Float[Tensor, " B"]
    """Degrees."""
    azimuth: Float[Tensor, " B"]
    """Degrees in [-180, 180)."""
    radius: Float[Tensor, " B"]

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def __getitem__(self, idx: slice | int) -> CameraBatch:
        """A sub-batch (an int keeps the batch dimension)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return CameraBatch(*(getattr(self, k)[idx] for k in ("c2w", "fov", "elevation", "azimuth", "radius")))

    def to(self, device: torch.device | str) -> CameraBatch:
        return CameraBatch(
            *(getattr(self, k).to(device) for k in ("c2w", "fov", "elevation", "azimuth", "radius"))
        )


def view_of(elevation: float, azimuth: float, cfg: CameraConfig | None = None) -> View:
    """The view class of a camera (degrees). Shared with the built-in prior's captioning."""
    cfg = cfg or CameraConfig()
    if elevation > cfg.overhead_elevation:
        return View.OVERHEAD
    az = (azimuth + 180.0) % 360.0 - 180.0
    if abs(az) <= cfg.front_half_angle:
        return View.FRONT
    if abs(az) >= 180.0 - cfg.back_half_angle:
        return View.BACK
    return View.SIDE


def look_at(eye: Float[Tensor, "B 3"], target: Float[Tensor, "B 3"] | None = None) -> Float[Tensor, "B 4 4"]:
    """Camera-to-world matrices for cameras at ``eye`` looking at ``target`` (default origin), Z up."""
    if target is None:
        target = torch.zeros_like(eye)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up_world = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device).expand_as(forward)
    right = torch.cross(forward, up_world, dim=-1)
    # Straight up/down: any right vector will do.
    degenerate = right.norm(dim=-1, keepdim=True) < 1e-6
    right = torch.where(degenerate, torch.tensor([1.0, 0.0, 0.0], dtype=eye.dtype, device=eye.device), right)
    right = torch.nn.functional.normalize(right, dim=-1)
    up = torch.cross(right, forward, dim=-1)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, up, -forward, eye
    c2w[:, 3, 3] = 1.0
    return c2w


def orbit_cameras(
    elevation: Float[Tensor, " B"],
    azimuth: Float[Tensor, " B"],
    radius: Float[Tensor, " B"],
    fov_deg: Float[Tensor, " B"],
) -> CameraBatch:
    """Cameras on a sphere, angles in degrees, looking at the origin (see module doc for the frame)."""
    el, az = torch.deg2rad(elevation), torch.deg2rad(azimuth)
    eye = torch.stack(
        [
            radius * torch.cos(el) * torch.sin(az),
            -radius * torch.cos(el) * torch.cos(az),
            radius * torch.sin(el),
        ],
        -1,
    )
    return CameraBatch(
        look_at(eye), torch.deg2rad(fov_deg), elevation, (azimuth + 180.0) % 360.0 - 180.0, radius
    )


class CameraSampler:
    """Draws random orbit cameras from :class:`CameraConfig` with an explicit generator (reproducible)."""

    def __init__(self, cfg: CameraConfig):
        cfg.validate()
        self.cfg = cfg

    def sample(self, batch_size: int, generator: torch.Generator) -> CameraBatch:
        """B cameras drawn uniformly from the configured ranges (CPU tensors)."""

        def uniform(lo_hi: tuple[float, float]) -> Tensor:
            lo, hi = lo_hi
            return lo + (hi - lo) * torch.rand(batch_size, generator=generator)

        return orbit_cameras(
            uniform(self.cfg.elevation_range),
            uniform(self.cfg.azimuth_range),
            uniform(self.cfg.radius_range),
            uniform(self.cfg.fov_range),
        )

    def views(self, cams: CameraBatch) -> list[View]:
        return [view_of(float(e), float(a), self.cfg) for e, a in zip(cams.elevation, cams.azimuth)]

    def prompts(self, prompt: str, cams: CameraBatch) -> list[str]:
        """Per-camera prompts with the view suffix (or the bare prompt when view prompts are off)."""
        if not self.cfg.view_dependent_prompt:
            return [prompt] * len(cams)
        return [prompt + v.suffix for v in self.views(cams)]


def turntable(
    n: int, elevation: float = 20.0, radius: float = 2.5, fov_deg: float = 45.0, start_azimuth: float = 0.0
) -> CameraBatch:
    """n evenly spaced cameras around the object, for previews and evaluation."""
    az = start_azimuth + torch.arange(n, dtype=torch.float32) * (360.0 / n)
    full = torch.full((n,), 1.0)
    return orbit_cameras(full * elevation, az, full * radius, full * fov_deg)
