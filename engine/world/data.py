"""Sampling the procedural world: objects, biased cameras, captions and labels, in batches.

View bias, as in real photo collections (this is what makes score distillation grow Janus faces):
primitives are seen from a uniform azimuth; objects with a front (snowman, house) are seen
**60%** within ±45° of the front, **25%** from the sides (45°–135° either way) and **15%** from the back
(|azimuth| > 135°). Elevation, distance and field of view come from the engine's ``CameraConfig``.

Captions: "a red cube", "a snowman", "a blue house" (the house's body colour); with probability
``view_suffix_prob`` the view suffix of :func:`engine.cameras.view_of` is appended (", front view" …),
so the thresholds are the engine's own. Labels for the judge: class, colour (a snowman is white),
whether the object has a front and whether that front faces the camera (|azimuth| < 90°).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from engine.cameras import CameraConfig, View, orbit_cameras, view_of
from engine.world.render import render_scenes
from engine.world.scene import CLASS_NAMES, COLOUR_NAMES, SHAPES, ObjectSpec

COLOUR_LABELS: tuple[str, ...] = COLOUR_NAMES
"""Colour label order of the judge (a snowman's label is "white")."""


@dataclass
class WorldConfig:
    """What the world's image distribution looks like."""

    size: int = 32
    """Image side in pixels."""
    supersample: int = 2
    """Rays per pixel side (antialiasing by area averaging)."""
    front_object_prob: float = 0.3
    """Probability of a snowman or a house (half each); the rest are the six primitives, uniformly."""
    front_view_prob: float = 0.60
    """For objects with a front: P(|azimuth| ≤ 45°)."""
    side_view_prob: float = 0.25
    """For objects with a front: P(45° < |azimuth| ≤ 135°); the back gets the rest (0.15)."""
    view_suffix_prob: float = 0.5
    """Probability that a caption ends with its view suffix."""
    scale_range: tuple[float, float] = (0.75, 1.05)
    """Uniform object scale."""
    front_yaw_jitter: float = 10.0
    """± degrees of yaw for objects with a front (primitives get any yaw)."""
    cameras: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """Elevation/distance/fov ranges: the engine's training cameras."""


@dataclass
class WorldBatch:
    images: Float[Tensor, "B 3 H W"]
    """RGB in [0, 1] over the engine's background."""
    masks: Float[Tensor, "B 1 H W"]
    captions: list[str]
    specs: list[ObjectSpec]
    class_idx: Int[Tensor, " B"]
    """Index into ``CLASS_NAMES``."""
    colour_idx: Int[Tensor, " B"]
    """Index into ``COLOUR_LABELS``."""
    has_front: Bool[Tensor, " B"]
    front_visible: Bool[Tensor, " B"]
    """The camera sees the front (|azimuth| < 90°); False for primitives."""
    azimuth: Float[Tensor, " B"]
    elevation: Float[Tensor, " B"]


def caption_of(spec: ObjectSpec) -> str:
    if spec.shape == "snowman":
        return "a snowman"
    article = "an" if spec.colour[0] in "aeiou" else "a"
    return f"{article} {spec.colour} {spec.shape}"


def vocabulary() -> list[str]:
    """Every word a caption can contain, in a fixed order (the built-in prior's tokenizer vocabulary)."""
    words = ["a", "an", ",", "view", *COLOUR_NAMES, *CLASS_NAMES, *(v.value for v in View)]
    return list(dict.fromkeys(words))


class WorldSampler:
    """Draws random world batches from a CPU generator (same generator state → same batch)."""

    def __init__(self, cfg: WorldConfig | None = None):
        self.cfg = cfg or WorldConfig()
        c = self.cfg
        if not 0 <= c.front_view_prob + c.side_view_prob <= 1:
            raise ValueError("front_view_prob + side_view_prob must lie in [0, 1]")
        self.primitives = [n for n in CLASS_NAMES if not SHAPES[n].has_front]
        self.fronted = [n for n in CLASS_NAMES if SHAPES[n].has_front]

    def sample_specs(self, n: int, gen: torch.Generator) -> list[ObjectSpec]:
        c, u = self.cfg, torch.rand(n, 4, generator=gen)
        specs = []
        for i in range(n):
            if u[i, 0] < c.front_object_prob:
                shape = self.fronted[min(int(u[i, 1] * len(self.fronted)), len(self.fronted) - 1)]
                yaw = (2 * float(u[i, 2]) - 1) * c.front_yaw_jitter
            else:
                shape = self.primitives[min(int(u[i, 1] * len(self.primitives)), len(self.primitives) - 1)]
                yaw = 360.0 * float(u[i, 2])
            colour = (
                "white"
                if shape == "snowman"
                else COLOUR_NAMES[int(torch.randint(len(COLOUR_NAMES), (1,), generator=gen))]
            )
            scale = c.scale_range[0] + (c.scale_range[1] - c.scale_range[0]) * float(u[i, 3])
            specs.append(ObjectSpec(shape, colour, yaw, scale))
        return specs

    def sample_azimuths(self, has_front: Tensor, gen: torch.Generator) -> Tensor:
        """Uniform for primitives; 60/25/15 front/side/back for objects with a front (degrees)."""
        n, c = has_front.shape[0], self.cfg
        u = torch.rand(n, 3, generator=gen)
        sign = torch.where(u[:, 2] < 0.5, -1.0, 1.0)
        front = (2 * u[:, 1] - 1) * 45.0
        side = sign * (45.0 + 90.0 * u[:, 1])
        back = sign * (135.0 + 45.0 * u[:, 1])
        biased = torch.where(
            u[:, 0] < c.front_view_prob,
            front,
            torch.where(u[:, 0] < c.front_view_prob + c.side_view_prob, side, back),
        )
        uniform = 360.0 * u[:, 1] - 180.0
        return torch.where(has_front, biased, uniform)

    def sample_batch(self, n: int, gen: torch.Generator) -> WorldBatch:
        c = self.cfg
        specs = self.sample_specs(n, gen)
        has_front = torch.tensor([SHAPES[s.shape].has_front for s in specs])
        az = self.sample_azimuths(has_front, gen)

        def uniform(lo_hi: tuple[float, float]) -> Tensor:
            return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(n, generator=gen)

        el = uniform(c.cameras.elevation_range)
        cams = orbit_cameras(el, az, uniform(c.cameras.radius_range), uniform(c.cameras.fov_range))
        suffix = torch.rand(n, generator=gen) < c.view_suffix_prob
        captions = [
            caption_of(s) + (view_of(float(e), float(a), c.cameras).suffix if suffix[i] else "")
            for i, (s, e, a) in enumerate(zip(specs, el, az))
        ]
        out = render_scenes(specs, cams, c.size, c.supersample)
        return WorldBatch(
            images=out.images,
            masks=out.masks,
            captions=captions,
            specs=specs,
            class_idx=torch.tensor([CLASS_NAMES.index(s.shape) for s in specs]),
            colour_idx=torch.tensor([COLOUR_LABELS.index(s.colour) for s in specs]),
            has_front=has_front,
            front_visible=has_front & (cams.azimuth.abs() < 90.0),
            azimuth=cams.azimuth,
            elevation=el,
        )
