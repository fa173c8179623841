"""This Blender session's add-on state: the one :class:`~.controller.Controller`, the timer that pumps it,
the preview icons, and stopping the engine when Blender quits.

``pump()`` is a plain function: Blender's timer calls it a few times a second, tests and scripts call it
directly (timers never fire in the bpy module). It is the only place where background results turn into
scene changes (imports) and UI changes (previews, redraws).
"""

from __future__ import annotations

import atexit
import contextlib
import traceback
from pathlib import Path

import bpy
import bpy.utils.previews

from . import importer
from .controller import Controller
from .state import PumpResult
from .supervisor import EngineSettings

PACKAGE = __package__
"""The add-on's module name, e.g. ``bl_ext.user_default.text3d`` when installed as an extension."""

_controller: Controller | None = None
_previews: bpy.utils.previews.ImagePreviewCollection | None = None
_preview_names: dict[str, str] = {}


def preferences() -> bpy.types.AddonPreferences | None:
    addon = bpy.context.preferences.addons.get(PACKAGE)
    return addon.preferences if addon is not None else None


def engine_settings() -> EngineSettings:
    """The preferences as plain data (defaults when the add-on is not enabled, e.g. in scripts)."""
    p = preferences()
    if p is None:
        return EngineSettings(allow_remote=bpy.app.online_access)
    return EngineSettings(
        url=p.engine_url.strip(),
        token_file=bpy.path.abspath(p.token_file) if p.token_file else "",
        auto_start=p.auto_start,
        python=bpy.path.abspath(p.python) if p.python else "",
        data_dir=bpy.path.abspath(p.data_dir) if p.data_dir else "",
        auto_import=p.auto_import,
        keep_engine=p.keep_engine,
        allow_remote=bpy.app.online_access,
    )


def import_options() -> importer.ImportOptions:
    p = preferences()
    if p is None:
        return importer.ImportOptions()
    return importer.ImportOptions(
        at_cursor=p.place_at_cursor, in_row=p.variants_in_row, parent_collection=p.target_collection.strip()
    )


def user_dir() -> Path:
    """The extension's own writable folder (never the add-on's folder)."""
    try:
        return Path(bpy.utils.extension_path_user(PACKAGE, create=True))
    except ValueError:  # loaded as a legacy add-on or imported by a script: not an extension
        return Path(bpy.utils.user_resource("DATAFILES", path="text3d", create=True))


def get_controller() -> Controller | None:
    return _controller


def controller() -> Controller:
    if _controller is None:
        raise RuntimeError("the Text-to-3D add-on is not enabled")
    return _controller


def apply_preferences() -> None:
    if _controller is not None:
        _controller.configure(engine_settings())


# ---------------------------------------------------------------------------------------------- pump
def pump() -> PumpResult:
    """Apply background results: previews → icons, finished downloads → imports; redraw if needed."""
    if _controller is None:
        return PumpResult()
    result = _controller.pump()
    for key in result.previews:
        _load_preview(key)
    for key in result.imports_ready:
        job = _controller.jobs[key]
        if bpy.context.mode != "OBJECT":  # importing needs Object Mode: wait for the user to leave theirs
            job.import_requested = True
            job.message = "ready: imported when you return to Object Mode"
            continue
        try:
            import_job(key)
        except RuntimeError as e:
            job.error = f"import failed: {e}"
            result.notices.append(f"text3d: could not import '{job.prompt}': {e}")
    for notice in result.notices:
        print(notice)
    if result.changed or result.previews or result.imports_ready:
        _redraw()
    return result


def _timer() -> float:
    try:
        pump()
    except Exception:  # a timer that raises is unregistered by Blender: keep pumping, show the bug
        traceback.print_exc()
    return 0.1 if _controller is not None and _controller.busy else 0.5


def import_job(key: str) -> list[bpy.types.Object]:
    """Import a job's downloaded results now (one undo step); returns the new top-level objects."""
    job = controller().jobs[key]
    files = [
        importer.ResultFile(path, int(job.results[k].get("seed", k)), k)
        for k, path in sorted(job.files.items())
    ]
    with _main_window_context():
        objects = importer.import_results(
            files, job_id=job.id or job.key, prompt=job.prompt, method=job.method, options=import_options()
        )
    job.imported += 1
    return objects


@contextlib.contextmanager
def _main_window_context():
    """Timers run without a window in the context; the glTF importer wants one when there is one."""
    wm = bpy.context.window_manager
    if bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]
        with bpy.context.temp_override(window=window, screen=window.screen):
            yield
    else:
        yield


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


# ---------------------------------------------------------------------------------------------- previews
def _load_preview(key: str) -> None:
    global _previews
    job = controller().jobs.get(key)
    if job is None or job.preview_path is None:
        return
    if _previews is None:
        _previews = bpy.utils.previews.new()
    old = _preview_names.pop(key, None)
    if old is not None and old in _previews:
        del _previews[old]
    name = f"{key}:{job.preview_variant}:{job.preview_step}"
    if name in _previews:
        del _previews[name]
    _previews.load(name, str(job.preview_path), "IMAGE")
    _preview_names[key] = name


def preview_icon(key: str) -> int:
    """Icon id of a job's latest preview (0 if none; always 0 in the bpy module, which has no GPU)."""
    name = _preview_names.get(key)
    if _previews is None or name is None or name not in _previews:
        return 0
    return _previews[name].icon_id


def preview_loaded(key: str) -> bool:
    return key in _preview_names and _previews is not None and _preview_names[key] in _previews


# ---------------------------------------------------------------------------------------------- lifetime
def start() -> None:
    """Create the session (called by register)."""
    global _controller
    if _controller is not None:
        return
    _controller = Controller(engine_settings(), user_dir())
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.2, persistent=True)
    atexit.register(_at_exit)


def stop() -> None:
    """End the session (called by unregister): stop threads and, unless kept, the engine started here."""
    global _controller, _previews
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    atexit.unregister(_at_exit)
    ctl, _controller = _controller, None
    if ctl is not None:
        ctl.shutdown()
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    _preview_names.clear()


def _at_exit() -> None:
    # Blender quits without unregistering add-ons; the engine's stdin watch is the safety net for crashes.
    if _controller is not None:
        _controller.shutdown()
