"""The procedural world the built-in prior and the judge learn from: simple objects as SDFs, sphere-traced.

``scene`` (shapes, colours, :class:`ObjectSpec`), ``render`` (batched sphere tracing on the engine's
cameras and background), ``data`` (biased sampling, captions, labels). ``python -m engine.world --out
grid.png`` writes a captioned sample grid.
"""

from engine.world.data import (
    COLOUR_LABELS,
    WorldBatch,
    WorldConfig,
    WorldSampler,
    caption_of,
    caption_words,
    vocabulary,
)
from engine.world.render import WorldRender, render_object, render_scenes
from engine.world.scene import CLASS_NAMES, COLOUR_NAMES, COLOURS, ObjectSpec

__all__ = [
    "CLASS_NAMES",
    "COLOURS",
    "COLOUR_LABELS",
    "COLOUR_NAMES",
    "ObjectSpec",
    "WorldBatch",
    "WorldConfig",
    "WorldRender",
    "WorldSampler",
    "caption_of",
    "caption_words",
    "render_object",
    "render_scenes",
    "vocabulary",
]
