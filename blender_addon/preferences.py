"""Add-on preferences: where the engine is, how to start it, and how results are imported."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import runtime
from .engine_process import DEFAULT_URL


def _changed(self, context) -> None:
    runtime.apply_preferences()


class TEXT3D_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_url: StringProperty(
        name="Engine URL",
        description="Address of the text-to-3D engine (python -m engine.serve). The add-on starts engines "
        "only on this computer (127.0.0.1 or localhost)",
        default=DEFAULT_URL,
        update=_changed,
    )
    token_file: StringProperty(
        name="Token File",
        description="The engine's token file (empty: <data folder>/token)",
        subtype="FILE_PATH",
        default="",
        update=_changed,
    )
    auto_start: BoolProperty(
        name="Start the Engine When Needed",
        description="When no engine answers and a job is requested, start one with the Python below",
        default=True,
        update=_changed,
    )
    python: StringProperty(
        name="Python",
        description="Interpreter of the environment where the engine is installed (it needs torch), e.g. "
        "<repo>/.venv/bin/python. Empty: $TEXT3D_PYTHON",
        subtype="FILE_PATH",
        default="",
        update=_changed,
    )
    data_dir: StringProperty(
        name="Data Folder",
        description="Where the engine keeps its jobs, results and token (empty: its default, "
        "~/.local/share/text3d/engine or $TEXT3D_ENGINE_DATA)",
        subtype="DIR_PATH",
        default="",
        update=_changed,
    )
    keep_engine: BoolProperty(
        name="Keep Engine Running After Blender Quits",
        description="Leave an engine started from Blender running when Blender quits or the add-on is "
        "disabled (otherwise it is stopped; running jobs checkpoint and resume on the next start)",
        default=False,
        update=_changed,
    )
    auto_import: BoolProperty(
        name="Import Results When Done",
        description="Import the results of jobs started from this Blender as soon as they finish",
        default=True,
        update=_changed,
    )
    place_at_cursor: BoolProperty(
        name="Place at 3D Cursor",
        description="Put imported results at the 3D cursor (else at the world origin)",
        default=True,
    )
    variants_in_row: BoolProperty(
        name="Variants in a Row",
        description="Lay the variants of a job out side by side along X",
        default=True,
    )
    drop_to_floor: BoolProperty(
        name="Stand on the Placement Point",
        description="Put each result's lowest point at the placement point's height (on the floor at the "
        "cursor, or on top of the active object)",
        default=True,
    )
    fit_size: FloatProperty(
        name="Fit to Size",
        description="Scale each result so its largest extent is this long (0: as generated, 1 unit = 1 m)",
        min=0.0,
        soft_max=10.0,
        default=0.0,
        unit="LENGTH",
    )
    align_to_active: BoolProperty(
        name="On the Active Object",
        description="Place results on top of the active object, turned as it is, instead of at the cursor",
        default=False,
    )
    target_collection: StringProperty(
        name="Target Collection",
        description="Put each prompt's collection inside this collection (created if missing; "
        "empty: directly in the scene)",
        default="",
    )

    def draw(self, context) -> None:
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Engine")
        col.prop(self, "engine_url")
        col.prop(self, "token_file")
        col = layout.column(heading="Auto-Start")
        col.prop(self, "auto_start", text="When Needed")
        sub = col.column()
        sub.active = self.auto_start
        sub.prop(self, "python")
        sub.prop(self, "data_dir")
        sub.prop(self, "keep_engine", text="Keep Running After Quit")
        col = layout.column(heading="Import")
        col.prop(self, "auto_import", text="When Done")
        col.prop(self, "place_at_cursor")
        col.prop(self, "align_to_active")
        col.prop(self, "drop_to_floor")
        col.prop(self, "fit_size")
        col.prop(self, "variants_in_row")
        col.prop(self, "target_collection")
        ctl = runtime.get_controller()
        if ctl is not None:
            layout.label(text=f"Files (previews, downloads, engine log): {ctl.work_dir}", icon="FILE_FOLDER")


classes = (TEXT3D_AddonPreferences,)
