"""The panel's settings, stored per scene (``scene.text3d``), and their conversion to a plain dict."""

from __future__ import annotations

import zlib
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .state import OFFLINE_CATALOG, Catalog

SEED_MODE_ITEMS = [
    ("FIXED", "Fixed", "Use this seed every time: Generate again makes the same asset"),
    ("INCREMENT", "Next", "After each Generate, move the seed past its variants: every press is a new asset"),
    ("RANDOM", "Random", "Draw a new seed for each Generate (shown here, so an asset can be made again)"),
]

NOISE_ITEMS = [
    ("DEFAULT", "Default", "Use the method's default (fixed for LMC-SDS, fresh for the others)"),
    ("FIXED", "Fixed", "Each seed fixes its guidance noise, so variants differ more"),
    ("FRESH", "Fresh", "New guidance noise every step"),
]

# The method, preset and texture menus list what the engine offers (its /v1/health answer, kept in the
# controller's EngineState.catalog); before any engine has answered, the offline catalog. Blender stores a
# dynamic enum's choice as the item's number, so each item's number is derived from its name: a choice
# survives the engine's list growing or reordering.
_ITEMS: dict[str, list[tuple[str, str, str, int]]] = {}
"""The last items handed to Blender, per menu: Blender needs Python to keep the strings alive."""


def item_number(name: str) -> int:
    """A stable enum item number for ``name`` (Blender keeps the number, not the name)."""
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def current_catalog() -> Catalog:
    from . import runtime  # late: runtime imports this module

    controller = runtime.get_controller()
    return controller.engine.catalog if controller is not None else OFFLINE_CATALOG


def _menu(key: str, entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str, int]]:
    items = [(name, label, tip, item_number(name)) for name, label, tip in entries]
    _ITEMS[key] = items
    return items


def method_items(_self: Any, _context: Any) -> list[tuple[str, str, str, int]]:
    return _menu("method", list(current_catalog().methods))


def preset_items(_self: Any, _context: Any) -> list[tuple[str, str, str, int]]:
    return _menu("preset", list(current_catalog().presets))


def texture_items(_self: Any, _context: Any) -> list[tuple[str, str, str, int]]:
    sizes = current_catalog().texture_sizes
    return _menu("texture", [(str(s), f"{s} px", f"Bake a {s}×{s} base-colour texture") for s in sizes])


class TEXT3D_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(
        name="Prompt",
        description="What to make, e.g. 'a red cube'. The built-in prior knows a small vocabulary (8 colours, "
        "sphere, cube, cylinder, cone, torus, pyramid, snowman, house); other priors are open-vocabulary",
        default="a red cube",
    )
    method: EnumProperty(
        name="Method", description="Guidance method", items=method_items, default=item_number("sds")
    )
    preset: EnumProperty(
        name="Preset",
        description="Run length and resolution",
        items=preset_items,
        default=item_number("fast"),
    )
    seed: IntProperty(
        name="Seed", description="Seed of the first variant (variants use seed, seed+1, …)", min=0, default=0
    )
    seed_mode: EnumProperty(
        name="Seed Mode",
        description="What Generate does with the seed",
        items=SEED_MODE_ITEMS,
        default="INCREMENT",
    )
    variants: IntProperty(
        name="Variants", description="How many assets to make, one per seed", min=1, max=16, default=1
    )
    noise: EnumProperty(
        name="Noise", description="Fixed-noise guidance", items=NOISE_ITEMS, default="DEFAULT"
    )

    # Advanced: each setting is sent only when its switch is on (else the preset/method default applies).
    use_guidance_scale: BoolProperty(name="Guidance Scale", description="Set the guidance scale")
    guidance_scale: FloatProperty(
        name="Guidance Scale",
        description="Classifier-free guidance scale ω: higher follows the prompt more closely but saturates",
        min=0.1,
        max=1000.0,
        soft_max=200.0,
        default=10.0,
    )
    use_steps: BoolProperty(name="Steps", description="Set the number of optimisation steps")
    steps: IntProperty(
        name="Steps", description="Optimisation steps per variant", min=1, max=20000, default=500
    )
    use_lam: BoolProperty(name="ESD λ", description="Set ESD's entropy weight λ (ESD only)")
    lam: FloatProperty(
        name="ESD λ",
        description="ESD's entropy weight: 0 is VSD, higher gives more varied views and fewer Janus faces",
        min=0.0,
        max=1.0,
        default=0.5,
    )
    use_texture_size: BoolProperty(name="Texture Size", description="Set the baked texture's size")
    texture_size: EnumProperty(name="Texture Size", items=texture_items, default=item_number("1024"))
    prior: StringProperty(
        name="Prior",
        description="The diffusion prior: builtin (CPU), sd (Stable Diffusion, needs a GPU), sd:<hub id> or a "
        "local diffusers folder",
        default="builtin",
    )
    extra_options: StringProperty(
        name="Extra Settings",
        description="More run settings as dotted.path = value, separated by ';', e.g. "
        "'renderer.n_samples = 48; export.resolution = 128' (names as in 'python -m engine.generate --help')",
        default="",
    )


def settings_dict(settings: TEXT3D_PG_settings) -> dict[str, Any]:
    """The scene settings as a plain dict (the input of :func:`.state.build_request`)."""
    return {name: getattr(settings, name) for name in settings.bl_rna.properties.keys() if name != "rna_type"}


classes = (TEXT3D_PG_settings,)


def attach() -> None:
    bpy.types.Scene.text3d = PointerProperty(type=TEXT3D_PG_settings)


def detach() -> None:
    del bpy.types.Scene.text3d
