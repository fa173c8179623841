"""The panel's settings, stored per scene (``scene.text3d``), and their conversion to a plain dict."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from .state import METHODS, PRESETS, TEXTURE_SIZES

METHOD_ITEMS = [(key, label, tip) for key, (label, tip) in METHODS.items()]
PRESET_ITEMS = [(key, label, tip) for key, (label, tip) in PRESETS.items()]
NOISE_ITEMS = [
    ("DEFAULT", "Default", "Use the method's default (fixed for LMC-SDS, fresh for the others)"),
    ("FIXED", "Fixed", "Each seed fixes its guidance noise, so variants differ more"),
    ("FRESH", "Fresh", "New guidance noise every step"),
]
TEXTURE_ITEMS = [(str(s), f"{s} px", f"Bake a {s}×{s} base-colour texture") for s in TEXTURE_SIZES]


class TEXT3D_PG_settings(bpy.types.PropertyGroup):
    prompt: StringProperty(
        name="Prompt",
        description="What to make, e.g. 'a red cube'. The built-in prior knows a small vocabulary (8 colours, "
        "sphere, cube, cylinder, cone, torus, pyramid, snowman, house); other priors are open-vocabulary",
        default="a red cube",
    )
    method: EnumProperty(name="Method", description="Guidance method", items=METHOD_ITEMS, default="sds")
    preset: EnumProperty(name="Preset", description="Run length and resolution", items=PRESET_ITEMS)
    seed: IntProperty(
        name="Seed", description="Seed of the first variant (variants use seed, seed+1, …)", min=0, default=0
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
    texture_size: EnumProperty(name="Texture Size", items=TEXTURE_ITEMS, default="1024")
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
