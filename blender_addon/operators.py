"""Operators: each copies what it needs into plain values and calls the controller (no logic of its own)."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from . import runtime
from .client import EngineError
from .properties import settings_dict
from .state import CONNECTED, REFUSED, SUBMITTING, WAITING, build_request

SUBMIT_WAIT_S = 120.0
"""How long Generate (from the UI) waits for the engine's answer to report it."""


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
        """Queue the job; returns its key, or None after reporting why it could not be queued."""
        try:
            request = build_request(settings_dict(context.scene.text3d))
        except ValueError as e:
            self.report({"ERROR"}, sentence(str(e)))
            return None
        try:
            job = runtime.controller().generate(request)
        except EngineError as e:
            self.report({"ERROR"}, f"Cannot generate: {e}")
            return None
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
    bl_options = {"REGISTER", "INTERNAL"}  # the importer itself makes the one undo step

    job_key: StringProperty(name="Job", description="The job whose results to import")

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
        try:
            ready = ctl.request_import(job.key)
        except EngineError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if not ready:
            self.report({"INFO"}, f"Downloading '{job.prompt}'; it is imported when ready")
            return {"FINISHED"}
        try:
            objects = runtime.import_job(job.key)
        except RuntimeError as e:
            job.error = f"import failed: {e}"
            self.report({"ERROR"}, f"Cannot import '{job.prompt}': {e}")
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            f"Imported {len(objects)} object(s) into collection '{objects[0].users_collection[0].name}'",
        )
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
            elif ctl.engine.status == CONNECTED and ctl.check_engine():
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
        if not ctl.check_engine():
            self.report({"WARNING"}, f"No engine answers at {ctl.settings.url}")
            return {"CANCELLED"}
        ctl.refresh_jobs()
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
    TEXT3D_OT_start_engine,
    TEXT3D_OT_stop_engine,
    TEXT3D_OT_refresh_jobs,
    TEXT3D_OT_show_message,
)
