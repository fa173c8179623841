"""The sidebar panel (3D View ▸ Sidebar ▸ Text3D): engine status, prompt and settings, progress with the live
preview, and the jobs list. Drawing only reads the controller's state; buttons call operators."""

from __future__ import annotations

import textwrap

import bpy

from . import runtime
from .state import (
    CONNECTED,
    CRASHED,
    NOT_RUNNING,
    REFUSED,
    STARTING,
    SUBMITTING,
    WAITING,
    JobView,
)

CATEGORY = "Text3D"
JOBS_SHOWN = 10

ENGINE_ICONS = {CONNECTED: "CHECKMARK", STARTING: "SORTTIME", NOT_RUNNING: "CANCEL", CRASHED: "ERROR"}
JOB_ICONS = {
    "done": "CHECKMARK",
    "running": "PLAY",
    "queued": "SORTTIME",
    "interrupted": "PAUSE",
    "cancelled": "X",
    "failed": "ERROR",
    REFUSED: "ERROR",
    WAITING: "TIME",
    SUBMITTING: "TIME",
}


def wrapped(layout: bpy.types.UILayout, text: str, context, icon: str = "NONE", max_lines: int = 6) -> None:
    """Labels for a long message, wrapped to the sidebar's width; a button shows the whole message."""
    region = getattr(context, "region", None)
    scale = (context.preferences.system.ui_scale if context.preferences else 0.0) or 1.0  # 0 without a window
    width = max(24, int((region.width if region else 300) / (7.0 * scale)) - 4)
    lines = [part for line in text.splitlines() for part in (textwrap.wrap(line, width) or [""])]
    col = layout.column(align=True)
    for k, line in enumerate(lines[:max_lines]):
        col.label(text=line, icon=icon if k == 0 else "BLANK1")
    if len(lines) > max_lines:
        op = col.operator("text3d.show_message", text="Show All", icon="TEXT")
        op.message = text


class VIEW3D_PT_text3d(bpy.types.Panel):
    """Text to 3D: prompt in, textured asset out"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Text to 3D"

    def draw(self, context) -> None:
        layout = self.layout
        ctl = runtime.get_controller()
        settings = getattr(context.scene, "text3d", None)
        if ctl is None or settings is None:
            layout.label(text="The add-on is not running", icon="ERROR")
            return
        self.draw_engine(context, layout, ctl)

        col = layout.column()
        col.prop(settings, "prompt", text="")
        col.prop(settings, "method")
        col.row().prop(settings, "preset", expand=True)
        row = col.row(align=True)
        row.prop(settings, "seed")
        row.prop(settings, "seed_mode", text="")
        col.prop(settings, "variants")
        row = col.row(align=True)
        row.label(text="Noise")
        row.prop(settings, "noise", expand=True)
        row = layout.row()
        row.scale_y = 1.5
        row.operator("text3d.generate", icon="PLAY")

        job = ctl.active_job()
        if job is not None:
            self.draw_active(context, layout, job)

    @staticmethod
    def draw_engine(context, layout: bpy.types.UILayout, ctl) -> None:
        engine = ctl.engine
        box = layout.box()
        row = box.row(align=True)
        row.label(text=f"Engine: {engine.label}", icon=ENGINE_ICONS.get(engine.status, "QUESTION"))
        if engine.owned:
            row.operator("text3d.start_engine", text="Restart", icon="FILE_REFRESH")
            row.operator("text3d.stop_engine", text="", icon="PAUSE")
        elif engine.status != CONNECTED:
            row.operator("text3d.start_engine", text="Start", icon="PLAY")
        if engine.status == CONNECTED and engine.running + engine.queue_length:
            box.label(text=f"{engine.running} running, {engine.queue_length} queued")
        if engine.message and engine.status != STARTING:
            wrapped(box, engine.message, context, icon="INFO", max_lines=4)
        if engine.status in (NOT_RUNNING, CRASHED):  # first run, or something to fix: the ways out
            col = box.column(align=True)
            col.operator("text3d.open_preferences", icon="PREFERENCES")
            col.operator("text3d.detect_python", icon="VIEWZOOM")
            col.operator("text3d.open_log", icon="TEXT")

    @staticmethod
    def draw_active(context, layout: bpy.types.UILayout, job: JobView) -> None:
        box = layout.box()
        box.label(text=job.prompt, icon=JOB_ICONS.get(job.state, "QUESTION"))
        if job.state == "running":
            box.progress(factor=job.progress, type="BAR", text=job.status_text())
        else:
            box.label(text=job.status_text())
        icon = runtime.preview_icon(job.key)
        if icon:
            box.template_icon(icon_value=icon, scale=8.0)
        if job.connection_error:
            wrapped(box, f"Reconnecting: {job.connection_error}", context, icon="TIME", max_lines=2)
        if job.error:
            wrapped(box, job.error, context, icon="ERROR")
        elif job.import_note:
            wrapped(box, job.import_note, context, icon="IMPORT", max_lines=3)
        elif job.message and job.state not in ("running", "done"):
            wrapped(box, job.message, context, max_lines=3)
        if job.active:
            op = box.operator("text3d.cancel", icon="CANCEL")
            op.job_key = job.key
        elif job.import_note:
            op = box.operator("text3d.import_results", icon="IMPORT")
            op.job_key = job.key


class VIEW3D_PT_text3d_advanced(bpy.types.Panel):
    """Settings most runs leave at the preset's and method's defaults"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Advanced"
    bl_parent_id = "VIEW3D_PT_text3d"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context) -> bool:
        return hasattr(context.scene, "text3d")

    def draw(self, context) -> None:
        s = context.scene.text3d
        col = self.layout.column()
        for switch, value in (
            ("use_guidance_scale", "guidance_scale"),
            ("use_steps", "steps"),
            ("use_lam", "lam"),
            ("use_texture_size", "texture_size"),
        ):
            row = col.row(align=True)
            row.prop(s, switch, text="")
            sub = row.row(align=True)
            sub.active = getattr(s, switch) and (switch != "use_lam" or s.method == "esd")
            sub.prop(s, value)
        if s.method != "esd" and s.use_lam:
            col.label(text="ESD λ applies to the ESD method only", icon="INFO")
        col.prop(s, "prior")
        col.prop(s, "extra_options", text="Extra")


class VIEW3D_PT_text3d_jobs(bpy.types.Panel):
    """This session's jobs and the earlier ones the engine still has"""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = CATEGORY
    bl_label = "Jobs"
    bl_parent_id = "VIEW3D_PT_text3d"

    @classmethod
    def poll(cls, context) -> bool:
        return runtime.get_controller() is not None

    def draw_header_preset(self, context) -> None:
        row = self.layout.row(align=True)
        row.operator("text3d.refresh_jobs", text="", icon="FILE_REFRESH", emboss=False)
        row.operator("text3d.clear_jobs", text="", icon="TRASH", emboss=False)

    def draw(self, context) -> None:
        layout = self.layout
        jobs = runtime.controller().sorted_jobs()
        if not jobs:
            layout.label(text="No jobs yet")
            return
        for job in jobs[:JOBS_SHOWN]:
            self.draw_job(context, layout.box(), job)
        if len(jobs) > JOBS_SHOWN:
            layout.label(text=f"{len(jobs) - JOBS_SHOWN} older job(s) not shown")

    @staticmethod
    def draw_job(context, box: bpy.types.UILayout, job: JobView) -> None:
        row = box.row(align=True)
        row.label(text=job.prompt, icon=JOB_ICONS.get(job.state, "QUESTION"))
        row.label(text=job.method.upper())
        thumb = runtime.icon_for(f"thumb:{job.key}") or runtime.icon_for(job.key)
        if thumb:
            box.template_icon(icon_value=thumb, scale=4.0)
        row = box.row(align=True)
        row.label(text=f"Seed {job.seed_label}" + ("" if job.local else " · not from this Blender"))
        row.label(text=job.status_text())
        if job.error:
            wrapped(box, job.error, context, icon="ERROR", max_lines=3)
        elif job.import_note:
            wrapped(box, job.import_note, context, icon="IMPORT", max_lines=2)
        row = box.row(align=True)
        if job.results or job.state == "done":
            label = "Re-import" if job.imported else "Import"
            op = row.operator("text3d.import_results", text=label, icon="IMPORT")
            op.job_key = job.key
        if job.request:
            op = row.operator("text3d.recall_settings", text="Recall", icon="RECOVER_LAST")
            op.job_key = job.key
        if job.active:
            op = row.operator("text3d.cancel", icon="CANCEL")
            op.job_key = job.key
        else:
            op = row.operator("text3d.remove_job", text="", icon="X")
            op.job_key = job.key
        if job.variants > 1 or len(job.results) > 1:  # each variant: its preview and its own Import
            grid = box.grid_flow(columns=0, even_columns=True, align=True)
            for k in range(max(job.variants, len(job.results))):
                cell = grid.column(align=True)
                icon = runtime.icon_for(f"{job.key}:v{k}")
                if icon:
                    cell.template_icon(icon_value=icon, scale=3.0)
                seed = job.results.get(k, {}).get("seed", job.seeds[k] if k < len(job.seeds) else "?")
                if k in job.results:
                    op = cell.operator("text3d.import_results", text=f"Seed {seed}", icon="IMPORT")
                    op.job_key, op.variant = job.key, k
                else:
                    cell.label(text=f"Seed {seed}")


def draw_status(self, context) -> None:
    """The status bar (``STATUSBAR_HT_header``): the running job's progress, ETA and a Cancel button, where
    Blender shows its own long tasks."""
    ctl = runtime.get_controller()
    job = ctl.active_job() if ctl is not None else None
    if job is None or not job.active:
        return
    row = self.layout.row(align=True)
    if job.state == "running" and job.total:
        row.progress(factor=job.progress, type="BAR", text=f"{job.prompt}: {job.status_text()}")
    else:
        row.label(text=f"{job.prompt}: {job.status_text()}", icon=JOB_ICONS.get(job.state, "TIME"))
    op = row.operator("text3d.cancel", text="", icon="CANCEL")
    op.job_key = job.key


classes = (VIEW3D_PT_text3d, VIEW3D_PT_text3d_advanced, VIEW3D_PT_text3d_jobs)
