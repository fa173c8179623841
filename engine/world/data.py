"""Sampling the procedural world: objects, biased cameras, captions and labels, in batches.

Objects: a snowman or a house with probability ``front_object_prob`` (0.3: 15% each), otherwise one of
the six primitives (sphere, cube, cylinder, cone, torus, pyramid), uniformly. Colours are uniform over
``colours``; a snowman is always white. Primitives get any yaw; the snowman and the house keep their
front towards −Y within ±``front_yaw_jitter`` (10°). Every object is scaled by U(``scale_range``).

View bias, as in real photo collections (this is what makes score distillation grow Janus faces):
primitives are seen from a uniform azimuth; objects with a front (snowman, house) are seen
**60%** within ±45° of the front, **25%** from the sides (45°–135° either way) and **15%** from the back
(|azimuth| > 135°); the 45°/135° bounds are the camera config's view thresholds. Azimuths are drawn in
the *object's* frame (0 = facing its front) and the camera is turned by the object's yaw, so labels and
view words say what the camera really sees. Elevation, distance and field of view are uniform over the
engine's ``CameraConfig`` ranges.

Captions: "a red cube", "an orange cone", "a snowman", "a blue house" (the house's body colour); with
probability ``view_suffix_prob`` the view suffix of :func:`engine.cameras.view_of` is appended
(", front view" …), so the thresholds are the engine's own. :func:`vocabulary` lists every caption word.

Labels for the judge: class (index into ``CLASS_NAMES``), colour (index into ``COLOUR_LABELS``; a
snowman is white — what it looks like), whether the object has a front and whether that front faces
the camera (|azimuth| < 90°, object frame; False for primitives), azimuth and elevation in degrees.

Evaluation renders a chosen object from chosen cameras with :func:`render_object`; a Janus test object
(front features duplicated on the back) is ``ObjectSpec("snowman", janus=True)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from engine.cameras import CameraBatch, CameraConfig, View, orbit_cameras, view_of
from engine.world.render import KEY_LIGHT, render_object, render_scenes
from engine.world.scene import CLASS_NAMES, COLOUR_NAMES, SHAPES, ObjectSpec

__all__ = [
    "COLOUR_LABELS",
    "WorldBatch",
    "WorldConfig",
    "WorldSampler",
    "caption_of",
    "caption_words",
    "render_object",
    "vocabulary",
]

COLOUR_LABELS: tuple[str, ...] = COLOUR_NAMES
"""Colour label order of the judge (a snowman's label is "white")."""
FRONT_VISIBLE_ANGLE = 90.0
"""|azimuth| below this (object frame, degrees) sees the front of an object that has one."""


@dataclass
class WorldConfig:
    """What the world's image distribution looks like."""

    size: int = 64
    """Image side in pixels."""
    supersample: int = 2
    """Rays per pixel side (antialiasing by area averaging)."""
    classes: tuple[str, ...] = CLASS_NAMES
    """Object classes drawn (labels always index the full ``CLASS_NAMES``)."""
    front_object_prob: float = 0.3
    """Probability of an object with a front (snowman or house, equally); the rest are primitives, uniformly."""
    colours: tuple[str, ...] = COLOUR_NAMES
    """Colours drawn, uniformly (labels always index the full ``COLOUR_LABELS``)."""
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
    light_jitter: float = 0.0
    """Std. dev. of Gaussian noise on the camera-space key-light direction per image (0: fixed light)."""
    trace_steps: int = 48
    """Sphere-tracing steps per ray."""
    cameras: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """Elevation/distance/fov ranges and view thresholds: the engine's training cameras."""
    seed: int = 0
    """Seed of :meth:`WorldSampler.batches` and of ``sample_batch`` without a generator."""

    def setup(self) -> WorldSampler:
        return WorldSampler(self)


@dataclass
class WorldBatch:
    images: Float[Tensor, "B 3 H W"]
    """RGB in [0, 1] over the engine's background."""
    masks: Float[Tensor, "B 1 H W"]
    """Foreground coverage in [0, 1]."""
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
    """Degrees in [-180, 180), object frame (0 = facing the object's front)."""
    elevation: Float[Tensor, " B"]
    """Degrees."""
    views: list[View] = dataclasses.field(default_factory=list)
    """``view_of(elevation, azimuth)`` of every sample, whether or not its caption carries it."""
    cams: CameraBatch | None = None
    """The world-frame cameras of the images."""


def caption_of(spec: ObjectSpec, view: View | None = None) -> str:
    """ "a red cube", "an orange cone", "a snowman", "a blue house, front view" …"""
    if spec.shape == "snowman":
        text = "a snowman"
    else:
        article = "an" if spec.colour[0] in "aeiou" else "a"
        text = f"{article} {spec.colour} {spec.shape}"
    return text + (view.suffix if view is not None else "")


def caption_words(caption: str) -> list[str]:
    """A caption as vocabulary words (the comma is a word of its own)."""
    return caption.replace(",", " , ").split()


def vocabulary() -> list[str]:
    """Every word a caption can contain, in a fixed order (the built-in prior's tokenizer vocabulary)."""
    words = ["a", "an", ",", "view", *COLOUR_NAMES, *CLASS_NAMES, *(v.value for v in View)]
    return list(dict.fromkeys(words))


class WorldSampler:
    """Draws random world batches from a CPU generator (same generator state → same batch)."""

    def __init__(self, cfg: WorldConfig | None = None):
        self.cfg = cfg or WorldConfig()
        c = self.cfg
        if not 0 <= c.front_view_prob + c.side_view_prob <= 1 or min(c.front_view_prob, c.side_view_prob) < 0:
            raise ValueError("front_view_prob and side_view_prob must be ≥ 0 with a sum in [0, 1]")
        if not 0 <= c.front_object_prob <= 1 or not 0 <= c.view_suffix_prob <= 1:
            raise ValueError("front_object_prob and view_suffix_prob must lie in [0, 1]")
        unknown = [n for n in c.classes if n not in SHAPES] + [n for n in c.colours if n not in COLOUR_NAMES]
        if unknown or not c.classes or not c.colours:
            raise ValueError(
                f"classes must be a non-empty subset of {CLASS_NAMES} and colours of {COLOUR_NAMES}"
                + (f"; unknown: {unknown}" if unknown else "")
            )
        if c.size < 1 or c.supersample < 1:
            raise ValueError(f"size ({c.size}) and supersample ({c.supersample}) must be positive")
        c.cameras.setup()  # validates the camera ranges
        self.primitives = [n for n in CLASS_NAMES if n in c.classes and not SHAPES[n].has_front]
        self.fronted = [n for n in CLASS_NAMES if n in c.classes and SHAPES[n].has_front]

    def sample_specs(self, n: int, gen: torch.Generator) -> list[ObjectSpec]:
        """n random objects (no rendering)."""
        c, u = self.cfg, torch.rand(n, 4, generator=gen)
        front_prob = c.front_object_prob if self.primitives and self.fronted else float(bool(self.fronted))
        specs = []
        for i in range(n):
            if u[i, 0] < front_prob:
                shape = self.fronted[min(int(u[i, 1] * len(self.fronted)), len(self.fronted) - 1)]
                yaw = (2 * float(u[i, 2]) - 1) * c.front_yaw_jitter
            else:
                shape = self.primitives[min(int(u[i, 1] * len(self.primitives)), len(self.primitives) - 1)]
                yaw = 360.0 * float(u[i, 2])
            colour = (
                "white"
                if shape == "snowman"
                else c.colours[int(torch.randint(len(c.colours), (1,), generator=gen))]
            )
            scale = c.scale_range[0] + (c.scale_range[1] - c.scale_range[0]) * float(u[i, 3])
            specs.append(ObjectSpec(shape, colour, yaw, scale))
        return specs

    def sample_azimuths(self, has_front: Bool[Tensor, " B"], gen: torch.Generator) -> Float[Tensor, " B"]:
        """Object-frame azimuths in degrees: uniform for primitives; front/side/back-biased for the rest."""
        n, c = has_front.shape[0], self.cfg
        lo, hi = c.cameras.front_half_angle, 180.0 - c.cameras.back_half_angle
        u = torch.rand(n, 3, generator=gen)
        sign = torch.where(u[:, 2] < 0.5, -1.0, 1.0)
        front = (2 * u[:, 1] - 1) * lo
        side = sign * (lo + (hi - lo) * u[:, 1])
        back = sign * (hi + (180.0 - hi) * u[:, 1])
        biased = torch.where(
            u[:, 0] < c.front_view_prob,
            front,
            torch.where(u[:, 0] < c.front_view_prob + c.side_view_prob, side, back),
        )
        uniform = 360.0 * u[:, 1] - 180.0
        return torch.where(has_front, biased, uniform)

    def sample_batch(self, n: int, gen: torch.Generator | None = None) -> WorldBatch:
        """n rendered samples; without a generator, one seeded by ``cfg.seed``."""
        if n < 1:
            raise ValueError(f"batch size must be positive, got {n}")
        c = self.cfg
        gen = gen if gen is not None else torch.Generator().manual_seed(c.seed)
        specs = self.sample_specs(n, gen)
        has_front = torch.tensor([SHAPES[s.shape].has_front for s in specs])
        az = self.sample_azimuths(has_front, gen)

        def uniform(lo_hi: tuple[float, float]) -> Tensor:
            return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(n, generator=gen)

        el = uniform(c.cameras.elevation_range)
        yaw = torch.tensor([s.yaw for s in specs], dtype=torch.float32)
        cams = orbit_cameras(el, az + yaw, uniform(c.cameras.radius_range), uniform(c.cameras.fov_range))
        suffix = torch.rand(n, generator=gen) < c.view_suffix_prob
        views = [view_of(float(e), float(a), c.cameras) for e, a in zip(el, az)]
        captions = [caption_of(s, v if bool(w) else None) for s, v, w in zip(specs, views, suffix)]
        lights = None
        if c.light_jitter > 0:
            key = torch.nn.functional.normalize(torch.tensor(KEY_LIGHT), dim=0)
            lights = key + c.light_jitter * torch.randn(n, 3, generator=gen)
        out = render_scenes(specs, cams, c.size, c.supersample, lights, c.trace_steps)
        return WorldBatch(
            images=out.images,
            masks=out.masks,
            captions=captions,
            specs=specs,
            class_idx=torch.tensor([CLASS_NAMES.index(s.shape) for s in specs]),
            colour_idx=torch.tensor([COLOUR_LABELS.index(s.colour) for s in specs]),
            has_front=has_front,
            front_visible=has_front & (az.abs() < FRONT_VISIBLE_ANGLE),
            azimuth=az,
            elevation=el,
            views=views,
            cams=cams,
        )

    def batches(self, batch_size: int) -> Iterator[WorldBatch]:
        """An endless stream of batches from a generator seeded by ``cfg.seed`` (data on the fly)."""
        gen = torch.Generator().manual_seed(self.cfg.seed)
        while True:
            yield self.sample_batch(batch_size, gen)
