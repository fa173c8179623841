"""Objects of the procedural world: signed distance functions (SDFs) in torch, with per-part albedos.

Every shape lives in its own *local* frame, in the engine's world convention (Z up, the front faces
−Y, see :mod:`engine.cameras`), centred on the origin and inside a ball of radius :data:`BOUND_RADIUS`
(≈0.6–0.7 for every shape). An :class:`ObjectSpec` places a shape in the world with a yaw about Z and a
uniform scale; the renderer maps rays into the local frame, so SDFs never see those parameters.

A shape is a union of named *parts* (the snowman's body, nose, eyes, buttons; the house's body, roof,
door, windows). :meth:`Shape.parts` returns one distance per part: the SDF is their minimum, and the
part with the smallest distance at a surface point picks the albedo. Convex polytopes (pyramid, roof)
use the maximum of their face planes, a lower bound of the true distance, which keeps sphere
tracing safe.

Janus objects (for testing a Janus detector) evaluate their front features at (x, −|y|, z): the
door/windows or nose/eyes/buttons then appear on the back (+Y) as a mirror image of the front.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor

RGB = tuple[float, float, float]

COLOURS: dict[str, RGB] = {
    "red": (0.85, 0.10, 0.10),
    "orange": (0.95, 0.50, 0.05),
    "yellow": (0.95, 0.85, 0.10),
    "green": (0.10, 0.65, 0.15),
    "blue": (0.10, 0.25, 0.85),
    "purple": (0.55, 0.15, 0.75),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
}
"""The eight named colours (albedo, display RGB in [0, 1]); all far from the grey (0.7) background."""
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

BOUND_RADIUS = 0.75
"""Every shape fits in this ball around its local origin (before the spec's scale)."""

# Fixed materials of the parts that do not take the object's colour.
CARROT: RGB = COLOURS["orange"]
COAL: RGB = COLOURS["black"]
SNOW: RGB = COLOURS["white"]
SLATE: RGB = (0.30, 0.30, 0.38)
BROWN: RGB = (0.50, 0.28, 0.12)
WOOD: RGB = (0.33, 0.17, 0.06)
LIGHT_WOOD: RGB = (0.80, 0.60, 0.35)
GLASS: RGB = (0.60, 0.85, 1.00)


# --- SDF building blocks (Inigo Quilez's formulas) ---------------------------------------------------
# Points are [3, N] tensors (structure of arrays): each coordinate is a contiguous row, which makes
# the element-wise maths several times faster on a CPU than [N, 3] rows.


def _len2(a: Tensor, b: Tensor) -> Tensor:
    return torch.sqrt(a * a + b * b)


def _len3(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.sqrt(a * a + b * b + c * c)


def sd_sphere(x: Tensor, y: Tensor, z: Tensor, r: float) -> Tensor:
    return _len3(x, y, z) - r


def sd_box(
    x: Tensor, y: Tensor, z: Tensor, half: tuple[float, float, float], rounding: float = 0.0
) -> Tensor:
    """Axis-aligned box centred on the origin (edges rounded by ``rounding``)."""
    qx, qy, qz = (
        x.abs() - (half[0] - rounding),
        y.abs() - (half[1] - rounding),
        z.abs() - (half[2] - rounding),
    )
    outside = _len3(qx.clamp(min=0.0), qy.clamp(min=0.0), qz.clamp(min=0.0))
    inside = torch.maximum(torch.maximum(qx, qy), qz).clamp(max=0.0)
    return outside + inside - rounding


def sd_cylinder_z(x: Tensor, y: Tensor, z: Tensor, r: float, half_h: float) -> Tensor:
    dx = _len2(x, y) - r
    dz = z.abs() - half_h
    return torch.maximum(dx, dz).clamp(max=0.0) + _len2(dx.clamp(min=0.0), dz.clamp(min=0.0))


def sd_capped_cone(radial: Tensor, axial: Tensor, half_h: float, r_base: float, r_top: float) -> Tensor:
    """Capped cone along an axis: base radius at axial = −half_h, top radius at +half_h."""
    qx, qy = radial, axial
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0.0, r_base, r_top))
    ca_y = qy.abs() - half_h
    k1x, k1y = r_top, half_h
    k2x, k2y = r_top - r_base, 2.0 * half_h
    h = (((k1x - qx) * k2x + (k1y - qy) * k2y) / (k2x * k2x + k2y * k2y)).clamp(0.0, 1.0)
    cb_x = qx - k1x + k2x * h
    cb_y = qy - k1y + k2y * h
    dist = torch.sqrt(torch.minimum(ca_x * ca_x + ca_y * ca_y, cb_x * cb_x + cb_y * cb_y))
    return torch.where((cb_x < 0.0) & (ca_y < 0.0), -dist, dist)


def _slope(lateral: Tensor, z: Tensor, half_w: float, z_base: float, height: float) -> Tensor:
    """Signed distance to the sloped plane through (half_w, z_base) and (0, z_base + height)."""
    k = 1.0 / math.hypot(height, half_w)
    return lateral * (height * k) + z * (half_w * k) - (z_base * half_w + half_w * height) * k


def sd_pyramid(x: Tensor, y: Tensor, z: Tensor, half_w: float, z_base: float, height: float) -> Tensor:
    """Square pyramid (max of its five face planes)."""
    sides = _slope(torch.maximum(x.abs(), y.abs()), z, half_w, z_base, height)
    return torch.maximum(sides, z_base - z)


def sd_gable_roof(
    x: Tensor, y: Tensor, z: Tensor, half_x: float, half_y: float, z_base: float, height: float
) -> Tensor:
    """Triangular prism with its ridge along X (max of its five face planes)."""
    return torch.maximum(
        torch.maximum(x.abs() - half_x, z_base - z), _slope(y.abs(), z, half_y, z_base, height)
    )


# --- Shapes -----------------------------------------------------------------------------------------


class Shape(ABC):
    """An object class: named parts, an SDF, part albedos. Subclasses define :meth:`parts`."""

    name: str
    has_front: bool = False
    part_names: tuple[str, ...] = ("body",)

    @abstractmethod
    def parts(self, p: Float[Tensor, "3 N"], janus: Bool[Tensor, " N"]) -> Float[Tensor, "P N"]:
        """Signed distance of each part at local points ``p`` (one coordinate per row)."""

    def sdf(self, p: Float[Tensor, "3 N"], janus: Bool[Tensor, " N"]) -> Float[Tensor, " N"]:
        return self.parts(p, janus).amin(dim=0)

    def part_colours(self, colour: str) -> tuple[RGB, ...]:
        """Albedo of each part for an object of the named colour (default: every part that colour)."""
        return (COLOURS[colour],) * len(self.part_names)

    def albedo_table(self) -> Float[Tensor, "C P 3"]:
        """Albedo per (colour index into :data:`COLOUR_NAMES`, part index)."""
        return torch.tensor([self.part_colours(c) for c in COLOUR_NAMES], dtype=torch.float32)


class Primitive(Shape):
    """A single-part shape: the SDF is evaluated directly."""

    def parts(self, p: Float[Tensor, "3 N"], janus: Bool[Tensor, " N"]) -> Float[Tensor, "P N"]:
        return self.sdf(p, janus)[None]

    @abstractmethod
    def sdf(self, p: Float[Tensor, "3 N"], janus: Bool[Tensor, " N"]) -> Float[Tensor, " N"]: ...


class Sphere(Primitive):
    name = "sphere"

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        return sd_sphere(*p, 0.52)


class Cube(Primitive):
    name = "cube"

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        return sd_box(*p, (0.38, 0.38, 0.38), rounding=0.025)


class Cylinder(Primitive):
    name = "cylinder"

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        return sd_cylinder_z(*p, 0.40, 0.42)


class Cone(Primitive):
    name = "cone"

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        # Apex at z = 0.55, base radius 0.45 at z = -0.4.
        return sd_capped_cone(_len2(p[0], p[1]), p[2] - 0.075, 0.475, 0.45, 0.0)


class Torus(Primitive):
    name = "torus"
    tilt = math.radians(35.0)
    """Tilted about X so the ring reads as a ring from the usual elevations."""

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        x, y, z = p
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        return _len2(_len2(x, c * y + s * z) - 0.42, c * z - s * y) - 0.16


class Pyramid(Primitive):
    name = "pyramid"

    def sdf(self, p: Tensor, janus: Tensor) -> Tensor:
        return sd_pyramid(*p, 0.42, -0.38, 0.93)


def _feature_y(y: Tensor, janus: Tensor) -> Tensor:
    """The y used for front features: Janus objects mirror the −Y half onto +Y."""
    return torch.where(janus, -y.abs(), y)


class Snowman(Shape):
    """Three stacked snowballs; carrot nose, coal eyes and buttons on the front (−Y)."""

    name = "snowman"
    has_front = True
    part_names = ("body", "nose", "eyes", "buttons")
    head_z, head_r = 0.38, 0.17

    def parts(self, p: Tensor, janus: Tensor) -> Tensor:
        x, y, z = p
        body = torch.minimum(
            torch.minimum(sd_sphere(x, y, z + 0.32, 0.30), sd_sphere(x, y, z - 0.06, 0.23)),
            sd_sphere(x, y, z - self.head_z, self.head_r),
        )
        fy, ax = _feature_y(y, janus), x.abs()
        # Nose: a cone along −Y from inside the head (its base) to the tip, 0.19 in front of the head.
        nose = sd_capped_cone(_len2(x, z - self.head_z), -(fy + 0.25), 0.11, 0.055, 0.0)
        eyes = sd_sphere(ax - 0.065, fy + 0.145, z - (self.head_z + 0.06), 0.037)
        buttons = torch.minimum(sd_sphere(x, fy + 0.215, z - 0.13, 0.036), sd_sphere(x, fy + 0.22, z, 0.036))
        return torch.stack([body, nose, eyes, buttons])

    def part_colours(self, colour: str) -> tuple[RGB, ...]:
        return (SNOW, CARROT, COAL, COAL)


class House(Shape):
    """A box with a gable roof (ridge along X); door and two windows on the front wall (−Y)."""

    name = "house"
    has_front = True
    part_names = ("body", "roof", "door", "windows")
    body_half = (0.42, 0.30, 0.26)
    body_z = -0.16  # centre of the body; the walls span z ∈ [-0.42, 0.10]

    def parts(self, p: Tensor, janus: Tensor) -> Tensor:
        x, y, z = p
        hx, hy, hz = self.body_half
        top, bottom = self.body_z + hz, self.body_z - hz
        body = sd_box(x, y, z - self.body_z, self.body_half, rounding=0.01)
        roof = sd_gable_roof(x, y, z, hx + 0.05, hy + 0.07, top, 0.42)
        fy = _feature_y(y, janus) + hy
        door = sd_box(x, fy, z - (bottom + 0.15), (0.085, 0.02, 0.15))
        windows = sd_box(x.abs() - 0.26, fy, z - (self.body_z + 0.06), (0.08, 0.02, 0.075))
        return torch.stack([body, roof, door, windows])

    def part_colours(self, colour: str) -> tuple[RGB, ...]:
        roof = BROWN if colour in ("blue", "purple", "black", "white") else SLATE
        door = LIGHT_WOOD if colour == "black" else WOOD
        return (COLOURS[colour], roof, door, GLASS)


SHAPES: dict[str, Shape] = {
    s.name: s for s in (Sphere(), Cube(), Cylinder(), Cone(), Torus(), Pyramid(), Snowman(), House())
}
"""Every object class, in label order (``class_idx`` indexes this)."""
CLASS_NAMES: tuple[str, ...] = tuple(SHAPES)


@dataclass(frozen=True)
class ObjectSpec:
    """One object placed in the world."""

    shape: str
    """Class name, a key of :data:`SHAPES`."""
    colour: str = "white"
    """Named colour (the house's body colour; a snowman is always white)."""
    yaw: float = 0.0
    """Rotation about Z in degrees (counter-clockwise seen from above)."""
    scale: float = 1.0
    """Uniform scale about the origin."""
    janus: bool = False
    """Duplicate the front features on the back (front-having shapes only)."""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose one of {', '.join(CLASS_NAMES)}")
        if self.colour not in COLOURS:
            raise ValueError(f"unknown colour {self.colour!r}; choose one of {', '.join(COLOUR_NAMES)}")
        if self.shape == "snowman" and self.colour != "white":
            raise ValueError("a snowman is always white")
        if self.janus and not SHAPES[self.shape].has_front:
            raise ValueError(f"janus needs a shape with a front (snowman, house), not {self.shape!r}")
        if not 0.2 <= self.scale <= 1.3:
            raise ValueError(f"scale {self.scale} would leave the scene box; keep it in [0.2, 1.3]")

    @property
    def class_idx(self) -> int:
        return CLASS_NAMES.index(self.shape)

    @property
    def colour_idx(self) -> int:
        return COLOUR_NAMES.index(self.colour)

    @property
    def has_front(self) -> bool:
        return SHAPES[self.shape].has_front
