"""Operators: each copies what it needs into plain values and calls the controller (no logic of its own)."""

from __future__ import annotations

import random

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import runtime
from .client import EngineError
from .engine_process import python_candidates
from .properties import settings_dict
from .state import CONNECTED, REFUSED, SUBMITTING, WAITING, build_request, settings_from_request

SUBMIT_WAIT_S = 120.0
"""How long Generate (from the UI) waits for the engine's answer to report it."""
RANDOM_SEEDS = 100_000
"""Seed mode Random draws from 0 … RANDOM_SEEDS − 1 (short enough to read out and type back in)."""


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


class TEXT3D_OT_generate(bpy.types.Operator):
    """Send the prompt and settings to the engine; the result is imported when it is done"""

    bl_idname = "text3d.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}

    _timer = None
    _key = ""
    _elapsed = 0.0

    @classmethod
    def poll(cls, context) -> bool:
        return runtime.get_controller() is not None and hasattr(context.scene, "text3d")

    def _submit(self, context) -> str | None:
        """Queue the job; returns its key, or None after reporting why it could not be queued.

        Seed mode Random draws this job's seed first (and shows it in the panel, so the asset can be
        made again); Increment moves the seed past this job's variants afterwards: pressing Generate
        twice gives two different assets in both modes."""
        s = context.scene.text3d
        if s.seed_mode == "RANDOM":
            s.seed = random.randrange(RANDOM_SEEDS)
        try:
            request = build_request(settings_dict(s))
        except ValueError as e:
            self.report({"ERROR"}, sentence(str(e)))
            return None
        try:
            job = runtime.controller().generate(request, origin=runtime.origin(context))
        except EngineError as e:
            self.report({"ERROR"}, f"Cannot generate: {e}")
            return None
        if s.seed_mode == "INCREMENT":
            s.seed = s.seed + s.variants
        return job.key

    def execute(self, context) -> set[str]:
        """From scripts: queue and return at once (follow the job with the controller)."""
        key = self._submit(context)
        if key is None:
            return {"CANCELLED"}
        self.report({"INFO"}, f"Queued '{runtime.controller().jobs[key].prompt}'")
        return {"FINISHED"}

    def invoke(self, context, event) -> set[str]:
        """From the panel: queue, then wait (without blocking Blender) for the engine's answer to report it."""
        key = self._submit(context)
        if key is None:
            return {"CANCELLED"}
        self._key, self._elapsed = key, 0.0
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event) -> set[str]:
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        runtime.pump()
        self._elapsed += 0.1
        ctl = runtime.get_controller()
        job = ctl.jobs.get(self._key) if ctl is not None else None
        if job is None:
            return self._finish(context, {"CANCELLED"})
        if job.state in (WAITING, SUBMITTING) and self._elapsed < SUBMIT_WAIT_S:
            return {"PASS_THROUGH"}
        if job.state in (REFUSED, "failed"):
            self.report({"ERROR"}, f"The engine refused '{job.prompt}': {job.error}")
            return self._finish(context, {"CANCELLED"})
        if job.id is None:
            self.report({"WARNING"}, f"'{job.prompt}' is still waiting for the engine ({ctl.engine.label})")
        else:
            where = f", position {job.queue_position} in the queue" if job.queue_position else ""
            self.report({"INFO"}, f"Generating '{job.prompt}'{where}")
        return self._finish(context, {"FINISHED"})

    def _finish(self, context, result: set[str]) -> set[str]:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        return result

    def cancel(self, context) -> None:
        """Blender ends the modal wait without us (the window closes, a file loads): drop its timer."""
        self._finish(context, {"CANCELLED"})


class TEXT3D_OT_cancel(bpy.types.Operator):
    """Cancel a job (a running job saves a checkpoint and stops)"""

    bl_idname = "text3d.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER", "INTERNAL"}

    job_key: StringProperty(name="Job", description="The job to cancel (empty: the running one)")

    def execute(self, context) -> set[str]:
        ctl = runtime.controller()
        job = ctl.jobs.get(self.job_key) if self.job_key else ctl.active_job()
        if job is None or job.final:
            self.report({"WARNING"}, "No running job to cancel")
            return {"CANCELLED"}
        try:
            ctl.cancel(job.key)
        except EngineError as e:
            self.report({"ERROR"}, f"Cannot cancel: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Cancelling '{job.prompt}'")
        return {"FINISHED"}


class TEXT3D_OT_import_results(bpy.types.Operator):
    """Import a finished job's results into the scene (downloading them first if needed)"""

    bl_idname = "text3d.import_results"
    bl_label = "Import"
    # The one undoable way results enter a scene: Blender makes one undo step for the whole import, and
    # the glTF importer it calls (an undoable operator too) adds none inside it.
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    job_key: StringProperty(name="Job", description="The job whose results to import")
    variant: IntProperty(
        name="Variant", description="Import only this variant (-1: all of them)", default=-1, min=-1
    )
    keep_selection: BoolProperty(
        name="Keep Selection",
        description="Leave the selection and the active object as they are (automatic imports)",
        options={"HIDDEN", "SKIP_SAVE"},
    )
    now: BoolProperty(options={"HIDDEN", "SKIP_SAVE"})
    """Set by the add-on's pump when the downloads it waited for are there."""

    @classmethod
    def poll(cls, context) -> bool:
        if context.mode != "OBJECT":
            cls.poll_message_set("Switch to Object Mode to import")
            return False
        return runtime.get_controller() is not None

    def execute(self, context) -> set[str]:
        ctl = runtime.controller()
        job = ctl.jobs.get(self.job_key)
        if job is None:
            self.report({"ERROR"}, f"No job {self.job_key!r}")
            return {"CANCELLED"}
        if self.variant >= 0:
            job.import_variants = {self.variant}
        if not self.now:
            try:
                ready = ctl.request_import(job.key)
            except EngineError as e:
                self.report({"ERROR"}, str(e))
                return {"CANCELLED"}
            if not ready:
                self.report({"INFO"}, f"Downloading '{job.prompt}'; it is imported when ready")
                return {"CANCELLED"}  # nothing changed yet: no undo step
        try:
            objects = runtime.import_job(job.key, keep_selection=self.keep_selection)
        except RuntimeError as e:
            job.error = f"import failed: {e}"
            self.report({"ERROR"}, f"Cannot import '{job.prompt}': {e}")
            return {"CANCELLED"}
        if bpy.app.background:
            # Without a window (blender -b, the bpy module) Blender pushes no undo step for operators, so
            # the one step is pushed here; with the UI, returning FINISHED is what makes it.
            bpy.ops.ed.undo_push(message=f"Import Text-to-3D '{job.prompt}'")
        self.report(
            {"INFO"},
            f"Imported {len(objects)} object(s) into collection '{objects[0].users_collection[0].name}'",
        )
        return {"FINISHED"}


class TEXT3D_OT_notify(bpy.types.Operator):
    """Show a message in the status bar and the Info log"""

    bl_idname = "text3d.notify"
    bl_label = "Text-to-3D Notice"
    bl_options = {"INTERNAL"}

    message: StringProperty(name="Message")
    level: EnumProperty(items=[("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", "")])

    def execute(self, context) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


class TEXT3D_OT_start_engine(bpy.types.Operator):
    """Start the engine on this computer (or restart the one started from Blender)"""

    bl_idname = "text3d.start_engine"
    bl_label = "Start Engine"
    bl_options = {"REGISTER", "INTERNAL"}

    @classmethod
    def description(cls, context, properties) -> str:
        ctl = runtime.get_controller()
        if ctl is not None and ctl.engine.owned:
            return "Restart the engine started from Blender (running jobs resume from their checkpoint)"
        return "Start the engine with the Python and data folder set in the add-on preferences"

    def execute(self, context) -> set[str]:
        ctl = runtime.controller()
        try:
            if ctl.engine.owned:
                ctl.restart_engine()
            elif ctl.engine.status == CONNECTED:  # the health monitor's word: no blocking check here
                self.report({"INFO"}, f"An engine is already running at {ctl.settings.url}")
                return {"CANCELLED"}
            else:
                ctl.start_engine()
        except EngineError as e:
            self.report({"ERROR"}, f"Cannot start the engine: {e}")
            return {"CANCELLED"}
        return {"FINISHED"}


class TEXT3D_OT_stop_engine(bpy.types.Operator):
    """Stop the engine started from Blender (running jobs save a checkpoint and resume on the next start)"""

    bl_idname = "text3d.stop_engine"
    bl_label = "Stop Engine"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context) -> set[str]:
        try:
            runtime.controller().stop_engine()
        except EngineError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        return {"FINISHED"}


class TEXT3D_OT_refresh_jobs(bpy.types.Operator):
    """List the jobs the engine has, including those from earlier sessions"""

    bl_idname = "text3d.refresh_jobs"
    bl_label = "Refresh Jobs"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context) -> set[str]:
        ctl = runtime.controller()
        if ctl.engine.status != CONNECTED:
            ctl.supervisor.wake()  # ask again now; the list follows when it answers
            self.report({"WARNING"}, f"No engine answers at {ctl.settings.url} (yet)")
            return {"CANCELLED"}
        ctl.refresh_jobs()
        return {"FINISHED"}


class TEXT3D_OT_recall_settings(bpy.types.Operator):
    """Put this job's prompt and settings back into the panel (with its seed, to make it again)"""

    bl_idname = "text3d.recall_settings"
    bl_label = "Recall Settings"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}  # scene settings change: undoable

    job_key: StringProperty(name="Job")

    def execute(self, context) -> set[str]:
        job = runtime.controller().jobs.get(self.job_key)
        if job is None or not job.request:
            self.report({"WARNING"}, "That job's settings are not known")
            return {"CANCELLED"}
        s = context.scene.text3d
        for name, value in settings_from_request(job.request).items():
            try:
                setattr(s, name, value)
            except (TypeError, ValueError) as e:  # e.g. a method this engine no longer offers
                self.report({"WARNING"}, f"Could not recall {name}: {e}")
        self.report({"INFO"}, f"Recalled the settings of '{job.prompt}'")
        return {"FINISHED"}


class TEXT3D_OT_remove_job(bpy.types.Operator):
    """Take this finished job off the list (the engine keeps its results)"""

    bl_idname = "text3d.remove_job"
    bl_label = "Remove"
    bl_options = {"INTERNAL"}

    job_key: StringProperty(name="Job")

    def execute(self, context) -> set[str]:
        runtime.controller().remove(self.job_key)
        return {"FINISHED"}


class TEXT3D_OT_clear_jobs(bpy.types.Operator):
    """Take every finished job off the list (the engine keeps their results)"""

    bl_idname = "text3d.clear_jobs"
    bl_label = "Clear Finished"
    bl_options = {"INTERNAL"}

    def execute(self, context) -> set[str]:
        n = runtime.controller().clear_finished()
        self.report({"INFO"}, f"Removed {n} finished job(s) from the list")
        return {"FINISHED"}


class TEXT3D_OT_open_log(bpy.types.Operator):
    """Open the log of the engine started from Blender"""

    bl_idname = "text3d.open_log"
    bl_label = "Open Engine Log"
    bl_options = {"INTERNAL"}

    def execute(self, context) -> set[str]:
        path = runtime.controller().supervisor.log_path
        if not path.is_file():
            self.report({"WARNING"}, f"No engine log yet (it is written to {path} when Blender starts one)")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=str(path))
        return {"FINISHED"}


class TEXT3D_OT_detect_python(bpy.types.Operator):
    """Look for a Python that can run the engine ($TEXT3D_PYTHON, python3 on the PATH) and use it"""

    bl_idname = "text3d.detect_python"
    bl_label = "Detect Python"
    bl_options = {"INTERNAL"}

    def execute(self, context) -> set[str]:
        runtime.controller().detect_python(python_candidates())
        self.report({"INFO"}, "Looking for the engine's Python…")
        return {"FINISHED"}


class TEXT3D_OT_open_preferences(bpy.types.Operator):
    """Open the add-on's preferences (where the engine is and how to start it)"""

    bl_idname = "text3d.open_preferences"
    bl_label = "Open Preferences"
    bl_options = {"INTERNAL"}

    def execute(self, context) -> set[str]:
        bpy.ops.preferences.addon_show(module=runtime.PACKAGE)
        return {"FINISHED"}


class TEXT3D_OT_show_message(bpy.types.Operator):
    """Show the whole message"""

    bl_idname = "text3d.show_message"
    bl_label = "Details"
    bl_options = {"INTERNAL"}

    message: StringProperty(name="Message")

    def execute(self, context) -> set[str]:
        self.report({"INFO"}, self.message)
        return {"FINISHED"}

    def invoke(self, context, event) -> set[str]:
        return context.window_manager.invoke_popup(self, width=600)

    def draw(self, context) -> None:
        col = self.layout.column(align=True)
        for line in self.message.splitlines() or [""]:
            col.label(text=line)


classes = (
    TEXT3D_OT_generate,
    TEXT3D_OT_cancel,
    TEXT3D_OT_import_results,
    TEXT3D_OT_notify,
    TEXT3D_OT_start_engine,
    TEXT3D_OT_stop_engine,
    TEXT3D_OT_refresh_jobs,
    TEXT3D_OT_recall_settings,
    TEXT3D_OT_remove_job,
    TEXT3D_OT_clear_jobs,
    TEXT3D_OT_open_log,
    TEXT3D_OT_detect_python,
    TEXT3D_OT_open_preferences,
    TEXT3D_OT_show_message,
)
