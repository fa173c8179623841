"""Run in a fresh process with the bpy module: ``python blender_session.py SCENARIO 'PARAMS-JSON'``.

Each scenario installs the built extension through Blender's extension system (into the temporary user
folder of ``BLENDER_USER_RESOURCES``), enables it, drives it as a user would — operators, then pumping the
add-on as its timer would (timers never fire in the bpy module) — and prints ``REPORT {json}``: the facts the
test asserts on. Nothing here asserts, so a failing test shows what actually happened.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import mathutils

addon_utils = importlib.import_module("addon_utils")  # importable only once bpy is

MODULE = "bl_ext.user_default.text3d"
CLASS_NAMES = [
    "VIEW3D_PT_text3d",
    "VIEW3D_PT_text3d_advanced",
    "VIEW3D_PT_text3d_jobs",
    "TEXT3D_OT_generate",
    "TEXT3D_OT_cancel",
    "TEXT3D_OT_import_results",
    "TEXT3D_OT_start_engine",
    "TEXT3D_OT_stop_engine",
    "TEXT3D_OT_refresh_jobs",
    "TEXT3D_OT_notify",
    "TEXT3D_OT_recall_settings",
    "TEXT3D_OT_remove_job",
    "TEXT3D_OT_clear_jobs",
]
OPERATORS = ["generate", "cancel", "import_results", "start_engine", "stop_engine", "refresh_jobs"]


# ---------------------------------------------------------------------------------------------- helpers
def report(**facts) -> None:
    print("REPORT " + json.dumps(facts, default=str), flush=True)


def install(zip_path: str):
    """Install the zip into the user repository with Blender's own operator and enable it."""
    result = bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    if "FINISHED" not in result:
        raise RuntimeError(f"package_install_files returned {result}")
    return importlib.import_module(MODULE)


def prefs():
    return bpy.context.preferences.addons[MODULE].preferences


def configure(p: dict, **overrides) -> None:
    """Point the add-on at an engine (the test's, or one it may start on a free port)."""
    values = {
        "engine_url": p["url"],
        "data_dir": p["data_dir"],
        "python": p.get("python", ""),
        "auto_start": p.get("auto_start", False),
        "keep_engine": False,
        **overrides,
    }
    for k, v in values.items():
        setattr(prefs(), k, v)


def set_prompt(p: dict, prompt: str, **extra) -> None:
    s = bpy.context.scene.text3d
    s.prompt = prompt
    s.use_steps, s.steps = True, p.get("steps", 30)
    s.use_texture_size, s.texture_size = True, "256"
    s.extra_options = p["options"]
    for k, v in extra.items():
        setattr(s, k, v)


def mod():
    return sys.modules[MODULE]


def ctl():
    return mod().runtime.controller()


def pump_until(cond, timeout: float, what: str, log: list | None = None) -> float:
    """Pump the add-on (as its timer would) until ``cond()``; seconds taken. Raises TimeoutError."""
    t0 = time.monotonic()
    while True:
        r = mod().runtime.pump()
        if log is not None:
            log.append(r)
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            c = ctl()
            jobs = [(j.prompt, j.state, j.step, j.message, j.error) for j in c.jobs.values()]
            raise TimeoutError(f"{what} not reached in {timeout} s; engine {c.engine}; jobs {jobs}")
        time.sleep(0.05)


def op_call(op, **kw) -> dict:
    """Call an operator; its result, or the error it reported (bpy raises RuntimeError for ERROR reports)."""
    try:
        return {"result": sorted(op(**kw)), "error": None}
    except RuntimeError as e:
        return {"result": None, "error": str(e)}


def text3d_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("text3d-"))


def wait_threads_gone(timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while text3d_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    return text3d_threads()


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def asset_facts(obj) -> dict:
    """Name, tags, placement and how its material's Principled BSDF gets its Base Color."""
    facts = {
        "name": obj.name,
        "type": obj.type,
        "props": {k: obj[k] for k in obj.keys() if k.startswith("text3d_")},
        "location": list(obj.location),
        "collections": [c.name for c in obj.users_collection],
    }
    xs = [(obj.matrix_world @ mathutils.Vector(c)).x for c in obj.bound_box]
    facts["bounds_x"] = [min(xs), max(xs)]
    mats = [m for m in getattr(obj.data, "materials", []) if m is not None]
    if not mats or not mats[0].use_nodes:
        return facts
    bsdf = next((n for n in mats[0].node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
    facts["principled"] = bsdf is not None
    if bsdf is None:
        return facts
    links = bsdf.inputs["Base Color"].links
    feeder = links[0].from_node if links else None
    facts["base_color_from"] = feeder.bl_idname if feeder else None
    image = getattr(feeder, "image", None)
    if image is not None:
        px = list(image.pixels[:])
        rgb = [px[i : i + 3] for i in range(0, len(px), 4 * 97)]  # a sample of texels
        facts["image"] = {
            "size": list(image.size),
            "packed": image.packed_file is not None,
            "distinct_texels": len({tuple(round(c, 3) for c in t) for t in rgb}),
            "mean_rgb": [sum(t[k] for t in rgb) / len(rgb) for k in range(3)] if rgb else None,
        }
    return facts


def tagged_objects() -> list:
    return sorted((o for o in bpy.data.objects if "text3d_job_id" in o), key=lambda o: o.name)


class RecordingLayout:
    """Stands in for ``bpy.types.UILayout`` when drawing a panel without a window: records what is drawn
    and checks that every property, operator and icon it names exists."""

    ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())

    def __init__(self, log: dict):
        self.log = log
        self.active = True
        self.enabled = True
        self.scale_y = 1.0
        self.use_property_split = False

    def _icon(self, icon: str) -> None:
        if icon not in self.ICONS:
            self.log["problems"].append(f"unknown icon {icon!r}")

    def _child(self, *args, **kw) -> RecordingLayout:
        return RecordingLayout(self.log)

    row = column = box = split = grid_flow = _child

    def label(self, text: str = "", icon: str = "NONE", **kw) -> None:
        self._icon(icon)
        self.log["labels"].append(text)

    def prop(self, data, name: str, icon: str = "NONE", **kw) -> None:
        self._icon(icon)
        if name not in data.bl_rna.properties:
            self.log["problems"].append(f"no property {name!r} on {data}")
        self.log["props"].append(name)

    def operator(self, idname: str, text: str = "", icon: str = "NONE", **kw):
        self._icon(icon)
        category, name = idname.split(".")
        try:
            rna = getattr(getattr(bpy.ops, category), name).get_rna_type()
        except (AttributeError, KeyError):
            self.log["problems"].append(f"no operator {idname}")
            return SimpleNamespace()
        allowed = set(rna.properties.keys())
        log = self.log

        class Props:
            def __setattr__(self, key, value):
                if key not in allowed:
                    log["problems"].append(f"{idname} has no property {key!r}")
                log["operators"].append(f"{idname}:{key}={value}")

        self.log["operators"].append(idname)
        return Props()

    def progress(self, factor: float = 0.0, type: str = "BAR", text: str = "") -> None:
        if not 0.0 <= factor <= 1.0:
            self.log["problems"].append(f"progress factor {factor} outside 0..1")
        self.log["labels"].append(f"[progress {factor:.2f}] {text}")

    def template_icon(self, icon_value: int = 0, scale: float = 1.0) -> None:
        self.log["labels"].append("[preview]")

    def separator(self, **kw) -> None:
        pass


def draw_panels() -> dict:
    """Draw every panel of the add-on into a RecordingLayout."""
    log: dict = {"labels": [], "props": [], "operators": [], "problems": []}
    m = mod().ui
    for cls in (m.VIEW3D_PT_text3d, m.VIEW3D_PT_text3d_advanced, m.VIEW3D_PT_text3d_jobs):
        fake = SimpleNamespace(
            layout=RecordingLayout(log),
            **{n: getattr(cls, n) for n in ("draw_engine", "draw_active", "draw_job") if hasattr(cls, n)},
        )
        poll = getattr(cls, "poll", None)
        if poll is None or poll(bpy.context):
            cls.draw(fake, bpy.context)
        if hasattr(cls, "draw_header_preset"):
            cls.draw_header_preset(fake, bpy.context)
    return log


# ---------------------------------------------------------------------------------------------- scenarios
def scenario_install(p: dict) -> None:
    """Install, enable, draw; unregister; register again; unregister again."""
    module = install(p["zip"])
    addon_dir = Path(module.__file__).parent
    files_before = sorted(str(f.relative_to(addon_dir)) for f in addon_dir.rglob("*"))
    facts: dict = {"addon_dir": str(addon_dir), "enabled": MODULE in bpy.context.preferences.addons}
    facts["classes"] = {n: hasattr(bpy.types, n) for n in CLASS_NAMES}
    facts["operators_poll"] = {n: getattr(bpy.ops.text3d, n).poll() for n in ("generate", "cancel")}
    facts["panel_category"] = bpy.types.VIEW3D_PT_text3d.bl_category
    facts["panel_region"] = bpy.types.VIEW3D_PT_text3d.bl_region_type
    facts["scene_settings"] = hasattr(bpy.context.scene, "text3d")
    facts["prefs"] = {
        k: getattr(prefs(), k) for k in ("engine_url", "auto_start", "keep_engine", "place_at_cursor")
    }
    # The menus are the engine's: before one answers, the offline catalog; then its /v1/health lists.
    props = mod().properties
    facts["method_items_offline"] = [i[0] for i in props.method_items(None, bpy.context)]
    ctl().engine.catalog = mod().state.catalog_from_health(p["health"])
    facts["method_items"] = {i[0]: i[2] for i in props.method_items(None, bpy.context)}
    facts["preset_items"] = [i[0] for i in props.preset_items(None, bpy.context)]
    facts["texture_items"] = [i[0] for i in props.texture_items(None, bpy.context)]
    settings = bpy.context.scene.text3d
    facts["method_default"] = settings.method
    settings.method = "esd"
    facts["method_set"] = settings.method
    settings.method = "sds"
    facts["user_dir"] = str(ctl().work_dir)
    facts["timer"] = bpy.app.timers.is_registered(mod().runtime._timer)

    # The panels in a few states: idle; a running job with a preview and an error; a crashed engine.
    configure(p)  # an address where nothing answers, auto-start off
    facts["draw_idle"] = draw_panels()
    state = mod().state
    job = state.JobView(key="local-99", prompt="a red cube", method="esd", id="f" * 32, state="running")
    job.step, job.total, job.eta_s, job.seeds = 12, 30, 42.0, [3]
    job.error = "a long readable error " * 20
    ctl().jobs[job.key] = job
    done = state.JobView(
        key="d" * 32, prompt="a snowman", id="d" * 32, state="done", ended=True, local=False, seeds=[1]
    )
    done.results = {0: {"variant": 0, "seed": 1, "glb": "/x"}}
    ctl().jobs[done.key] = done
    ctl().engine.set(state.CRASHED, "The engine was killed by SIGKILL. Last output:\n" + "line\n" * 10)
    facts["draw_busy"] = draw_panels()
    del ctl().jobs[job.key], ctl().jobs[done.key]

    # Generate with no engine and auto-start off: a readable error from the operator.
    ctl().engine.set(state.NOT_RUNNING, "")
    bpy.context.scene.text3d.prompt = "a red cube"
    facts["generate_without_engine"] = op_call(bpy.ops.text3d.generate)
    bpy.context.scene.text3d.prompt = "   "
    facts["generate_empty_prompt"] = op_call(bpy.ops.text3d.generate)

    old_controller = ctl()
    addon_utils.disable(MODULE, default_set=True)
    facts["after_disable"] = {
        "classes": {n: hasattr(bpy.types, n) for n in CLASS_NAMES},
        "scene_settings": hasattr(bpy.types.Scene, "text3d"),
        "timer": bpy.app.timers.is_registered(mod().runtime._timer),
        "threads": wait_threads_gone(),
        "controller": mod().runtime.get_controller() is not None,
    }
    addon_utils.enable(MODULE, default_set=True)
    facts["after_reenable"] = {
        "classes": {n: hasattr(bpy.types, n) for n in CLASS_NAMES},
        "scene_settings": hasattr(bpy.context.scene, "text3d"),
        "timer": bpy.app.timers.is_registered(mod().runtime._timer),
        "new_controller": mod().runtime.get_controller() is not old_controller,
        "operators_poll": bpy.ops.text3d.generate.poll(),
        "threads": text3d_threads(),
        "draw": draw_panels(),
    }
    addon_utils.disable(MODULE, default_set=True)
    facts["after_second_disable_threads"] = wait_threads_gone()
    facts["addon_files_unchanged"] = files_before == sorted(
        str(f.relative_to(addon_dir)) for f in addon_dir.rglob("*")
    )
    report(**facts)


def scenario_generate(p: dict) -> None:
    """Generate two variants against the test's engine; follow previews; auto-import; undo; re-import."""
    install(p["zip"])
    configure(p)
    pump_until(lambda: ctl().engine.status == "connected", 30, "connected")
    scene = bpy.context.scene
    scene.cursor.location = (1.0, 2.0, 0.0)
    set_prompt(p, "a red cube", seed=5, variants=2)
    bpy.ops.ed.undo_push(message="base")
    marker = bpy.data.objects.new("Marker", None)
    scene.collection.objects.link(marker)
    bpy.ops.ed.undo_push(message="marker")
    objects_before = sorted(o.name for o in bpy.data.objects)

    facts: dict = {"generate": op_call(bpy.ops.text3d.generate)}
    job = ctl().active_job()
    facts["request"] = job.request
    log: list = []
    progress_seen: list = []

    def imported() -> bool:
        if job.state == "running" and job.total:
            progress_seen.append((job.variant, job.step, job.total, job.eta_s))
        return job.imported > 0

    facts["seconds"] = pump_until(imported, 240, "results imported", log)
    previews = [k for r in log for k in r.previews]
    facts["previews"] = len(previews)
    facts["preview_file"] = str(job.preview_path) if job.preview_path else None
    facts["preview_png"] = job.preview_path.read_bytes()[:8].hex() if job.preview_path else None
    facts["preview_loaded"] = mod().runtime.preview_loaded(job.key)
    facts["progress_seen"] = progress_seen[:3] + progress_seen[-3:]
    facts["job"] = {
        "state": job.state,
        "id": job.id,
        "seeds": job.seeds,
        "results": sorted(job.results),
        "local": job.local,
        "imported": job.imported,
        "files": [str(f) for f in job.files.values()],
    }
    facts["engine"] = {"status": ctl().engine.status, "device": ctl().engine.device}
    facts["assets"] = [asset_facts(o) for o in tagged_objects()]
    facts["new_objects"] = sorted(set(o.name for o in bpy.data.objects) - set(objects_before))
    coll = bpy.data.collections.get("a red cube")
    facts["collection_in_scene"] = coll is not None and coll.name in scene.collection.children
    facts["draw"] = draw_panels()

    # One undo step: one undo removes the whole import and nothing before it.
    bpy.ops.ed.undo()
    facts["after_undo"] = {
        "tagged": [o.name for o in tagged_objects()],
        "marker": "Marker" in bpy.data.objects,
        "collection": "a red cube" in bpy.data.collections,
    }
    facts["reimport"] = op_call(bpy.ops.text3d.import_results, job_key=job.key)
    facts["after_reimport"] = {"tagged": [o.name for o in tagged_objects()], "imported": job.imported}
    report(**facts)


def scenario_history_and_cancel(p: dict) -> None:
    """An earlier job the engine has is listed and imported on request; a running job is cancelled."""
    install(p["zip"])
    configure(p)
    pump_until(lambda: ctl().engine.status == "connected", 30, "connected")
    earlier = p["earlier_job_id"]
    pump_until(lambda: ctl().job_by_id(earlier) is not None, 30, "earlier job listed")
    old = ctl().job_by_id(earlier)
    facts: dict = {
        "earlier": {
            "prompt": old.prompt,
            "method": old.method,
            "state": old.state,
            "seeds": old.seeds,
            "local": old.local,
            "imported": old.imported,
        },
        "draw": draw_panels(),
    }
    # Import options: not at the cursor, inside a target collection.
    bpy.context.scene.cursor.location = (5.0, 5.0, 0.0)
    prefs().place_at_cursor = False
    prefs().target_collection = "Text3D Results"
    facts["import_earlier"] = op_call(bpy.ops.text3d.import_results, job_key=old.key)
    pump_until(lambda: old.imported > 0, 60, "earlier job imported")
    facts["earlier_assets"] = [asset_facts(o) for o in tagged_objects()]
    target = bpy.data.collections.get("Text3D Results")
    facts["target_collection"] = {
        "in_scene": target is not None and target.name in bpy.context.scene.collection.children,
        "children": [c.name for c in target.children] if target else [],
    }

    set_prompt(p, "a blue sphere", steps=p.get("steps", 30))
    facts["generate"] = op_call(bpy.ops.text3d.generate)
    job = ctl().active_job()
    pump_until(lambda: job.state == "running" and job.step >= 1, 120, "job running")
    facts["step_at_cancel"] = job.step
    facts["cancel"] = op_call(bpy.ops.text3d.cancel, job_key=job.key)
    facts["seconds_to_stop"] = pump_until(lambda: job.final, 60, "job stopped")
    for _ in range(5):  # a little longer: nothing may be imported
        mod().runtime.pump()
        time.sleep(0.05)
    facts["job"] = {"state": job.state, "step": job.step, "total": job.total, "results": len(job.results)}
    facts["tagged_after_cancel"] = [o.name for o in tagged_objects()]
    facts["cancel_again"] = op_call(bpy.ops.text3d.cancel, job_key=job.key)
    report(**facts)


def scenario_crash_restart(p: dict) -> None:
    """Auto-start the engine from Generate, SIGKILL it mid-job, see the crash, restart, get the result."""
    install(p["zip"])
    configure(p, python=sys.executable, auto_start=True)
    set_prompt(p, "a green cone", steps=p.get("steps", 30))
    facts: dict = {"status_before": ctl().engine.status}
    facts["generate"] = op_call(bpy.ops.text3d.generate)
    facts["status_after_generate"] = ctl().engine.status
    job = ctl().active_job()
    facts["job_state_while_starting"] = job.state
    facts["seconds_to_connect"] = pump_until(lambda: ctl().engine.status == "connected", 180, "connected")
    pump_until(lambda: job.state == "running" and job.step >= p["kill_at_step"], 120, "job running")
    pid = ctl().engine.pid
    facts["killed_at_step"] = job.step
    facts["owned"] = ctl().engine.owned
    os.kill(pid, signal.SIGKILL)
    facts["seconds_to_notice"] = pump_until(lambda: ctl().engine.status == "crashed", 30, "crash noticed")
    facts["after_kill"] = {
        "status": ctl().engine.status,
        "label": ctl().engine.label,
        "message": ctl().engine.message,
        "job_state": job.state,
        "job_message": job.message,
        "draw": draw_panels(),
    }
    messages: list = []

    def done() -> bool:
        if job.message and (not messages or messages[-1] != job.message):
            messages.append(job.message)
        return job.imported > 0 or job.state in ("failed", "cancelled")

    facts["restart"] = op_call(bpy.ops.text3d.start_engine)
    facts["status_after_restart"] = ctl().engine.status
    pump_until(lambda: ctl().engine.status == "connected", 180, "reconnected")
    facts["new_pid"] = ctl().engine.pid
    facts["old_pid"] = pid
    pump_until(done, 180, "job finished after restart")
    facts["job"] = {"state": job.state, "messages": messages, "imported": job.imported, "error": job.error}
    facts["assets"] = [asset_facts(o) for o in tagged_objects()]
    new_pid = ctl().engine.pid
    addon_utils.disable(MODULE, default_set=True)
    facts["engine_stopped_on_disable"] = wait_dead(new_pid, 20)
    report(**facts)


def scenario_keep_engine(p: dict) -> None:
    """Disabling the add-on stops the engine it started, unless Keep Engine Running is on."""
    install(p["zip"])
    configure(p, python=sys.executable, auto_start=True)
    facts: dict = {"start": op_call(bpy.ops.text3d.start_engine)}
    pump_until(lambda: ctl().engine.status == "connected", 180, "connected")
    first = ctl().engine.pid
    addon_utils.disable(MODULE, default_set=True)
    facts["first_stopped"] = wait_dead(first, 20)
    addon_utils.enable(MODULE, default_set=True)
    configure(p, python=sys.executable, auto_start=True, keep_engine=True)
    facts["start_again"] = op_call(bpy.ops.text3d.start_engine)
    pump_until(lambda: ctl().engine.status == "connected", 180, "connected again")
    second = ctl().engine.pid
    addon_utils.disable(MODULE, default_set=True)
    time.sleep(1.0)
    facts["second_pid"] = second
    facts["second_alive_after_disable"] = alive(second)
    report(**facts)


def scenario_reenable(p: dict) -> None:
    """Disable the add-on mid-job: it returns at once and the engine it started checkpoints and stops by
    itself; enabled again, the job is still this Blender's and is imported when it finishes."""
    install(p["zip"])
    configure(p, python=sys.executable, auto_start=True)
    set_prompt(p, "a green cone", steps=p["steps"])
    facts: dict = {"generate": op_call(bpy.ops.text3d.generate)}
    job = ctl().active_job()
    pump_until(lambda: ctl().engine.status == "connected", 180, "connected")
    pump_until(lambda: job.id is not None and job.state == "running" and job.step >= 1, 120, "job running")
    job_id, pid = job.id, ctl().engine.pid
    t0 = time.monotonic()
    addon_utils.disable(MODULE, default_set=True)
    facts["disable_seconds"] = time.monotonic() - t0
    facts["engine_stopped_by_itself"] = wait_dead(pid, 90)
    addon_utils.enable(MODULE, default_set=True)
    configure(p, python=sys.executable, auto_start=True)
    facts["remembered"] = job_id in ctl().started
    facts["start"] = op_call(bpy.ops.text3d.start_engine)
    pump_until(lambda: ctl().engine.status == "connected", 180, "connected again")
    pump_until(lambda: ctl().job_by_id(job_id) is not None, 60, "job listed again")
    again = ctl().job_by_id(job_id)
    facts["listed"] = {"local": again.local, "state": again.state, "origin_scene": again.origin.get("scene")}
    pump_until(lambda: again.imported > 0 or again.state in ("failed", "cancelled"), 240, "imported")
    facts["finished"] = {"state": again.state, "imported": again.imported, "error": again.error}
    facts["assets"] = sorted(o.name for o in tagged_objects() if o.parent is None)
    new_pid = ctl().engine.pid
    addon_utils.disable(MODULE, default_set=True)
    facts["engine_stopped_on_disable"] = wait_dead(new_pid, 90)
    report(**facts)


def scenario_serve_then_hang(p: dict) -> None:
    """Start an engine from the add-on, report its pid, then wait to be killed (the test kills Blender)."""
    install(p["zip"])
    configure(p, python=sys.executable, auto_start=True)
    op_call(bpy.ops.text3d.start_engine)
    pump_until(lambda: ctl().engine.status == "connected", 180, "connected")
    report(engine_pid=ctl().engine.pid)
    while True:
        time.sleep(1.0)


def fake_done_job(key: str, files: list[str], prompt: str = "a red cube"):
    """A finished job whose results are already downloaded, as auto-import sees it."""
    state = mod().state
    job = state.JobView(
        key=key, prompt=prompt, id=key, state="done", ended=True, seeds=list(range(len(files)))
    )
    job.variants = len(files)
    job.results = {k: {"variant": k, "seed": k, "glb": "/x"} for k in range(len(files))}
    job.files = {k: Path(f) for k, f in enumerate(files)}
    job.origin = mod().runtime.origin()
    job.import_requested = job.auto_import_pending = True
    ctl().jobs[key] = job
    return job


def icon_mean(slot: str) -> list[float] | None:
    got = mod().runtime.preview_pixels(slot)
    if got is None:
        return None
    size, px = got
    n = size[0] * size[1]
    return [round(sum(px[i::4]) / n, 3) for i in range(3)]


def scenario_artist(p: dict) -> None:
    """What an artist relies on, without an engine: live previews that never go stale, seeds that change
    per Generate, and automatic imports that wait for a safe moment, keep the selection, stay out of other
    files and are one undo step each."""
    install(p["zip"])
    configure(p)
    runtime, state = mod().runtime, mod().state
    facts: dict = {}

    # Two previews of the same size, one after the other: the panel shows the second one's pixels.
    job = state.JobView(key="p" * 32, prompt="a red cube", id="p" * 32, state="running")
    ctl().jobs[job.key] = job
    for k, png in enumerate(p["pngs"], start=1):
        ev = mod().client.SSEEvent(id=k, type="preview", data={"step": k, "variant": 0, "png": png})
        ctl().post(("event", job.key, ev))
        runtime.pump()
        facts[f"preview_{k}"] = {"mean_rgb": icon_mean(job.key), "file": str(job.preview_path)}
    facts["preview_files_left"] = sorted(f.name for f in job.preview_path.parent.iterdir())
    del ctl().jobs[job.key]

    # Seeds: Random draws a new one per Generate, Next moves past the variants (queued while the engine
    # is "connected" but unreachable: the jobs wait, nothing is imported).
    ctl().engine.set(state.CONNECTED, "")
    s = bpy.context.scene.text3d
    s.prompt, s.variants = "a red cube", 2
    s.seed_mode = "RANDOM"
    randoms = []
    for _ in range(3):
        op_call(bpy.ops.text3d.generate)
        randoms.append(ctl().sorted_jobs()[0].request["seed"])
    s.seed_mode, s.seed = "INCREMENT", 5
    increments = []
    for _ in range(2):
        op_call(bpy.ops.text3d.generate)
        increments.append(ctl().sorted_jobs()[0].request["seed"])
    facts["seeds"] = {"random": randoms, "increment": increments, "after": s.seed}
    s.seed_mode = "FIXED"
    op_call(bpy.ops.text3d.generate)
    op_call(bpy.ops.text3d.generate)
    facts["seeds"]["fixed"] = [j.request["seed"] for j in ctl().sorted_jobs()[:2]]
    for j in list(ctl().jobs.values()):
        ctl().cancel(j.key)
    ctl().jobs.clear()
    ctl().engine.set(state.NOT_RUNNING, "")

    # Auto-import: the artist's own object is selected and active; undo history: base → marker.
    scene = bpy.context.scene
    bpy.ops.ed.undo_push(message="base")
    marker = bpy.data.objects.new("Marker", None)
    scene.collection.objects.link(marker)
    marker.select_set(True)
    bpy.context.view_layer.objects.active = marker
    bpy.ops.ed.undo_push(message="marker")
    selected_before = sorted(o.name for o in bpy.context.view_layer.objects if o.select_get())
    job = fake_done_job("a" * 32, p["glbs"])
    runtime._rendering = lambda: True  # a render job is running (the bpy module cannot start one)
    for _ in range(3):
        runtime.pump()
    facts["while_rendering"] = {"tagged": len(tagged_objects()), "note": job.import_note}
    runtime._rendering = lambda: False
    runtime.pump()
    facts["imported"] = {
        "tagged_roots": sorted(o.name for o in tagged_objects() if o.parent is None),
        "imported": job.imported,
        "selected": sorted(o.name for o in bpy.context.view_layer.objects if o.select_get()),
        "selected_before": selected_before,
        "active": bpy.context.view_layer.objects.active.name
        if bpy.context.view_layer.objects.active
        else None,
        "lowest_z": min(
            (o.matrix_world @ mathutils.Vector(c)).z for o in tagged_objects() for c in o.bound_box
        ),
    }
    facts["draw"] = draw_panels()
    bpy.ops.ed.undo()
    facts["after_one_undo"] = {"tagged": len(tagged_objects()), "marker": "Marker" in bpy.data.objects}
    bpy.ops.ed.undo()
    facts["after_two_undos"] = {"tagged": len(tagged_objects()), "marker": "Marker" in bpy.data.objects}

    # A job that finishes after another file was opened: an Import button there, never a surprise.
    other = fake_done_job("b" * 32, p["glbs"][:1], prompt="a blue sphere")
    bpy.ops.wm.read_homefile(use_empty=True)
    for _ in range(3):
        runtime.pump()
    facts["other_file"] = {
        "tagged": len(tagged_objects()),
        "note": other.import_note,
        "pending": other.auto_import_pending,
    }
    facts["manual_import"] = op_call(bpy.ops.text3d.import_results, job_key=other.key)
    facts["after_manual_import"] = sorted(o.name for o in tagged_objects() if o.parent is None)
    facts["draw_after"] = draw_panels()
    report(**facts)


def scenario_open_blend(p: dict) -> None:
    """Open a .blend (from the headless script) and describe the assets in it."""
    bpy.ops.wm.open_mainfile(filepath=p["blend"])
    report(
        assets=[asset_facts(o) for o in tagged_objects()],
        collections={c.name: [o.name for o in c.objects] for c in bpy.data.collections},
    )


if __name__ == "__main__":
    name, params = sys.argv[1], json.loads(sys.argv[2])
    globals()[f"scenario_{name}"](params)
