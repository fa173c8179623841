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
import uuid
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
        at_cursor=p.place_at_cursor,
        in_row=p.variants_in_row,
        parent_collection=p.target_collection.strip(),
        drop_to_floor=p.drop_to_floor,
        fit_size=p.fit_size,
        align_to_active=p.align_to_active,
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
_pending: dict[str, str] = {}
"""Jobs whose results are downloaded and waiting for a safe moment to be imported → why they wait."""
_TOKEN_KEY = "text3d_file_token"
"""Where the file token lives: ``bpy.app.driver_namespace`` outlives the add-on's module (disable/enable,
Reload Scripts), so a job started before a reload still matches the file it came from."""


def _file_token() -> str:
    """Names the file open now: a new token on every load (``load_post``), so an unsaved file is told apart
    from the unsaved file that was open before it."""
    return bpy.app.driver_namespace.setdefault(_TOKEN_KEY, uuid.uuid4().hex)


def origin(context: bpy.types.Context | None = None) -> dict[str, str]:
    """Where a job is started from: the .blend, this load of it, and the scene."""
    context = context or bpy.context
    scene = context.scene.name if context.scene is not None else ""
    return {"file": bpy.data.filepath, "token": _file_token(), "scene": scene}


def same_file(job_origin: dict) -> bool:
    """The job was started in the file open now (this load of it; or the same saved file, e.g. after
    Blender restarted). A job started from another file is never imported into this one by itself."""
    if not job_origin:
        return False
    if job_origin.get("token") == _file_token():
        return True
    return bool(job_origin.get("file")) and job_origin.get("file") == bpy.data.filepath


@bpy.app.handlers.persistent
def _on_load_post(*_args) -> None:
    bpy.app.driver_namespace[_TOKEN_KEY] = uuid.uuid4().hex
    for key in list(_pending):  # started in the file just closed: an Import button now, not a surprise
        _make_manual(key, "ready: it was started in another file; Import puts it here")
    _redraw()


def _make_manual(key: str, why: str) -> None:
    _pending.pop(key, None)
    job = _controller.jobs.get(key) if _controller is not None else None
    if job is not None:
        job.message = why
        job.import_note = why


def _rendering() -> bool:
    """A render or bake is running (the bpy module never renders in the background: tests replace this)."""
    return bpy.app.is_job_running("RENDER") or bpy.app.is_job_running("OBJECT_BAKE")


def import_blocker(job) -> tuple[str, str, bpy.types.Window | None]:
    """Whether a job's finished results may be imported now: ("now", "", window), ("wait", why, None) or
    ("manual", why, None). Never in the middle of something: a render, a tool in progress (any modal
    operator: a transform, a file browser), another mode; never into another file or a scene no window
    shows."""
    if not same_file(job.origin):
        return "manual", "ready: started in another file; Import puts it here", None
    scene = job.origin.get("scene", "")
    wm = bpy.context.window_manager
    windows = list(wm.windows) if wm is not None else []
    window = next((w for w in windows if w.scene is not None and w.scene.name == scene), None)
    if windows and window is None:
        return (
            "manual",
            f"ready: started in scene '{scene}', which no window shows; Import puts it here",
            None,
        )
    if scene not in bpy.data.scenes:
        return "manual", f"ready: its scene '{scene}' is gone; Import puts it in this one", None
    if _rendering():
        return "wait", "ready: imported when the render finishes", None
    if any(len(w.modal_operators) for w in windows):
        return "wait", "ready: imported when you finish the current tool", None
    if bpy.context.mode != "OBJECT":
        return "wait", "ready: imported when you return to Object Mode", None
    return "now", "", window


def pump() -> PumpResult:
    """Apply background results: previews → icons, finished downloads → imports (at a safe moment, as one
    undo step each); redraw the panel when something it shows changed."""
    if _controller is None:
        return PumpResult()
    result = _controller.pump()
    for key in result.previews:
        _load_preview(key)
    for key in result.thumbnails:
        job = _controller.jobs.get(key)
        if job is not None and job.thumbnail is not None:
            _load_icon(f"thumb:{key}", job.thumbnail)
    _apply_detected_python(result)
    for key in result.imports_ready:
        job = _controller.jobs[key]
        if job.auto_import_pending:
            _pending[key] = ""
        else:  # asked for with the Import button: the user is here, now
            _import_now(key, result, keep_selection=False)
    for key, why in list(_pending.items()):
        job = _controller.jobs.get(key)
        if job is None:
            _pending.pop(key)
            continue
        verdict, reason, window = import_blocker(job)
        if verdict == "manual":
            _make_manual(key, reason)
            job.auto_import_pending = False
            result.changed = True
        elif verdict == "wait":
            if reason != why:  # a new reason to show; the same one is not news (no redraw)
                _pending[key] = job.message = job.import_note = reason
                result.changed = True
        else:
            _pending.pop(key)
            job.auto_import_pending = False
            _import_now(key, result, keep_selection=True, window=window)
    for notice in result.notices:
        _notify(notice)
    if result.changed or result.previews or result.imports_ready:
        _redraw()
    return result


def _import_now(key: str, result: PumpResult, keep_selection: bool, window=None) -> None:
    """Import through the one undoable operator (a single undo step, whoever asked)."""
    job = _controller.jobs[key]
    wm = bpy.context.window_manager
    if window is None and bpy.context.window is None and wm is not None and wm.windows:
        window = wm.windows[0]  # a timer has no window in its context; operators want one
    override = {"window": window, "screen": window.screen} if window is not None else {}
    try:
        with bpy.context.temp_override(**override):
            bpy.ops.text3d.import_results(job_key=key, keep_selection=keep_selection, now=True)
    except RuntimeError as e:  # the operator reported an error (it recorded it on the job)
        result.notices.append(f"text3d: could not import '{job.prompt}': {str(e).strip()}")
    job.import_note = ""
    result.changed = True


def _apply_detected_python(result: PumpResult) -> None:
    """Detect Python answered: set the preference (which reconfigures the engine settings)."""
    found, _controller.detected_python = _controller.detected_python, None
    if found is None:
        return
    p = preferences()
    if found and p is not None:
        p.python = found
        result.notices.append(f"text3d: the engine's Python is {found}")
    elif not found:
        result.notices.append(
            "text3d: no Python found that can run the engine (it needs the engine package and torch): "
            "install it (README: Quick start) and set Preferences ▸ Add-ons ▸ Text to 3D ▸ Python"
        )
    result.changed = True


def _timer() -> float:
    try:
        pump()
    except Exception:  # a timer that raises is unregistered by Blender: keep pumping, show the bug
        traceback.print_exc()
    return 0.1 if _controller is not None and _controller.busy else 0.5


def import_job(key: str, keep_selection: bool = False) -> list[bpy.types.Object]:
    """Import a job's downloaded results now; returns the new top-level objects. Call it from an
    undoable operator (``text3d.import_results`` does): the operator makes the one undo step."""
    job = controller().jobs[key]
    files = [
        importer.ResultFile(path, int(job.results[k].get("seed", k)), k)
        for k, path in sorted(job.files.items())
        if job.import_variants is None or k in job.import_variants
    ]
    objects = importer.import_results(
        files,
        job_id=job.id or job.key,
        prompt=job.prompt,
        method=job.method,
        options=import_options(),
        keep_selection=keep_selection,
    )
    job.imported += 1
    job.import_variants = None
    return objects


def _redraw() -> None:
    """Tag the add-on's sidebar regions and the status bar for a redraw — not the whole 3D View with its
    viewport, which does not change when a job's progress does."""
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "STATUSBAR":
                area.tag_redraw()
            elif area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()


def _notify(text: str) -> None:
    """A done/failed/crash notice: in Blender's status bar and Info log (via a report), and the console."""
    print(text)
    wm = bpy.context.window_manager
    window = wm.windows[0] if wm is not None and wm.windows else None
    if window is None:
        return  # the bpy module: no window to report in
    level = "ERROR" if ("failed" in text or "crashed" in text or "could not" in text) else "INFO"
    with contextlib.suppress(RuntimeError), bpy.context.temp_override(window=window, screen=window.screen):
        bpy.ops.text3d.notify(message=text.removeprefix("text3d: "), level=level)


# ---------------------------------------------------------------------------------------------- previews
def _load_preview(key: str) -> None:
    """Show a job's newest preview image (and keep each variant's newest for the jobs list)."""
    job = controller().jobs.get(key)
    if job is None or job.preview_path is None:
        return
    name = _load_icon(f"{key}:{job.preview_variant}:{job.preview_step}", job.preview_path)
    if name is None:
        return
    for slot in (key, f"{key}:v{job.preview_variant}"):  # the latest of the job, and of this variant
        old = _preview_names.get(slot)
        _preview_names[slot] = name
        if old is not None and old != name and old not in _preview_names.values() and old in _previews:
            del _previews[old]


def _load_icon(name: str, path: Path) -> str | None:
    """A preview icon ``name`` holding the pixels of the image at ``path``, read now: its pixels are set
    directly, so Blender's thumbnail cache — which notices only whole-second changes of a file's time —
    can never show an older frame, and nothing is added to the user's thumbnail folder."""
    global _previews
    if _previews is None:
        _previews = bpy.utils.previews.new()
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError as e:
        print(f"text3d: cannot read the image {path}: {e}")
        return None
    try:
        size, pixels = tuple(image.size), image.pixels[:]
    finally:
        bpy.data.images.remove(image)
    if name in _previews:
        del _previews[name]
    icon = _previews.new(name)
    icon.image_size = size
    icon.image_pixels_float = pixels
    if name.startswith("thumb:"):
        _preview_names[name] = name
    return name


def icon_for(slot: str) -> int:
    """Icon id of a preview slot: a job key (its newest preview), ``<key>:v<k>`` (variant k's newest) or
    ``thumb:<key>`` (its turntable thumbnail); 0 if none (always 0 in the bpy module, which has no GPU)."""
    name = _preview_names.get(slot)
    if _previews is None or name is None or name not in _previews:
        return 0
    return _previews[name].icon_id


def preview_icon(key: str) -> int:
    """Icon id of a job's latest preview (0 if none; always 0 in the bpy module, which has no GPU)."""
    return icon_for(key)


def preview_loaded(key: str) -> bool:
    return key in _preview_names and _previews is not None and _preview_names[key] in _previews


def preview_pixels(slot: str) -> tuple[tuple[int, int], list[float]] | None:
    """(size, RGBA floats) of the icon the panel shows in a slot (see :func:`icon_for`; for tests)."""
    if not preview_loaded(slot):
        return None
    icon = _previews[_preview_names[slot]]
    return tuple(icon.image_size), list(icon.image_pixels_float)


# ---------------------------------------------------------------------------------------------- lifetime
def start() -> None:
    """Create the session (called by register)."""
    global _controller
    if _controller is not None:
        return
    _controller = Controller(engine_settings(), user_dir())
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.2, persistent=True)
    if _on_load_post not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load_post)
    from . import ui  # late: ui imports this module

    bpy.types.STATUSBAR_HT_header.append(ui.draw_status)
    atexit.register(_at_exit)


def stop() -> None:
    """End the session (called by unregister): stop threads and, unless kept, the engine started here."""
    global _controller, _previews
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    if _on_load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load_post)
    from . import ui

    with contextlib.suppress(ValueError):
        bpy.types.STATUSBAR_HT_header.remove(ui.draw_status)
    _pending.clear()
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
