"""What the panel shows, as plain data: the engine's status, the jobs, and how events change them.

No bpy and no threads in here. :class:`JobView` and :class:`EngineState` are mutated only on Blender's main
thread (by :mod:`.controller`'s ``pump``); the functions are pure so tests can call them directly.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import SSEEvent

# Engine status as shown in the panel.
CONNECTED = "connected"
STARTING = "starting"
NOT_RUNNING = "not running"
CRASHED = "crashed"

# Job states before the engine knows the job (the engine's own states follow once it does).
WAITING = "waiting"
"""Held until the engine answers (it is starting)."""
SUBMITTING = "submitting"
REFUSED = "refused"
"""The engine rejected the request (e.g. a word the prior does not know)."""


@dataclass(frozen=True)
class Catalog:
    """What the engine offers, as its ``/v1/health`` says: the menus are built from this."""

    methods: tuple[tuple[str, str, str], ...]
    """(name, label, summary) of each guidance method, in the engine's order."""
    presets: tuple[tuple[str, str, str], ...]
    """(name, label, summary) of each settings preset."""
    texture_sizes: tuple[int, ...]
    """Texture sizes the engine accepts."""

    @property
    def method_names(self) -> list[str]:
        return [m[0] for m in self.methods]


OFFLINE_CATALOG = Catalog(
    methods=(("sds", "SDS", "Score Distillation Sampling (the engine lists all methods once it runs)"),),
    presets=(("fast", "Fast", "Fewer steps at low resolution (the engine lists all presets once it runs)"),),
    texture_sizes=(256, 512, 1024, 2048),
)
"""Until an engine has answered: the one method and preset every engine has, so the panel can be drawn
and a first job queued; the engine's own lists replace these as soon as it answers."""


def catalog_from_health(health: dict[str, Any], previous: Catalog = OFFLINE_CATALOG) -> Catalog:
    """The catalog an engine's ``/v1/health`` answer describes (parts it lacks stay as ``previous``)."""

    def entries(key: str, old: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str], ...]:
        items = health.get(key)
        if not isinstance(items, list) or not items:
            return old
        out = []
        for it in items:
            if isinstance(it, dict) and isinstance(it.get("name"), str):
                name = it["name"]
                out.append((name, str(it.get("label") or name.upper()), str(it.get("summary") or "")))
            elif isinstance(it, str):  # an older engine lists bare names
                out.append((it, it.upper(), ""))
        return tuple(out) or old

    sizes = (health.get("limits") or {}).get("texture_sizes")
    texture_sizes = (
        tuple(int(x) for x in sizes if isinstance(x, int)) if isinstance(sizes, list) and sizes else ()
    )
    return Catalog(
        methods=entries("methods", previous.methods),
        presets=entries("presets", previous.presets),
        texture_sizes=texture_sizes or previous.texture_sizes,
    )


@dataclass
class EngineState:
    """The engine as the panel shows it."""

    status: str = NOT_RUNNING
    message: str = ""
    """Why it is in this status (a crash's exit and last log lines, what to do next)."""
    url: str = ""
    device: str = ""
    """e.g. "CPU" or the GPU's name (from /v1/health)."""
    version: str = ""
    queue_length: int = 0
    running: int = 0
    owned: bool = False
    """Started by this Blender session (so Start/Restart/Stop apply to it)."""
    pid: int | None = None
    log_path: str = ""
    since: float = field(default_factory=time.monotonic)
    """When the status last changed (monotonic seconds)."""
    catalog: Catalog = OFFLINE_CATALOG
    """Methods, presets and texture sizes of the engine (from its last /v1/health answer)."""

    def set(self, status: str, message: str = "") -> bool:
        """Change status and message; True if anything changed."""
        changed = (status, message) != (self.status, self.message)
        if status != self.status:
            self.since = time.monotonic()
        self.status, self.message = status, message
        return changed

    @property
    def label(self) -> str:
        if self.status == CONNECTED:
            return f"Connected ({self.device})" if self.device else "Connected"
        if self.status == STARTING:
            return f"Starting… {time.monotonic() - self.since:.0f} s"
        return self.status.capitalize()


@dataclass
class JobView:
    """One job: what was asked, where it is, and what came back."""

    key: str
    """Stable local key: the engine's job id, or "local-N" until the engine has accepted the job."""
    prompt: str
    method: str = "sds"
    request: dict[str, Any] = field(default_factory=dict)
    submission_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Sent with the submission as its Idempotency-Key: a resend after a dropped connection is the same job."""
    id: str | None = None
    """The engine's job id once accepted."""
    local: bool = True
    """Started from this Blender, in this session or an earlier one (the controller remembers them): its
    results are imported automatically, where it was started."""
    origin: dict[str, Any] = field(default_factory=dict)
    """Where it was started: {"file": .blend path or "", "token": that file's load, "scene": name} (set by
    the bpy layer; empty for jobs from elsewhere)."""
    state: str = SUBMITTING
    message: str = ""
    error: str | None = None
    seeds: list[int] = field(default_factory=list)
    queue_position: int | None = None
    variant: int = 0
    variants: int = 1
    step: int = 0
    total: int = 0
    its: float = 0.0
    eta_s: float | None = None
    loss: float | None = None
    last_event_id: int = 0
    connection_error: str | None = None
    """Set while the event stream is down (the client keeps reconnecting)."""
    preview_path: Path | None = None
    preview_step: int = -1
    preview_variant: int = 0
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Variant index → the engine's result (seed, glb URL path, faces, seconds…)."""
    files: dict[int, Path] = field(default_factory=dict)
    """Variant index → the downloaded .glb."""
    ended: bool = False
    """The engine said nothing more will happen to the job (its state is final: done, failed, cancelled)."""
    variant_previews: dict[int, Path] = field(default_factory=dict)
    """Variant index → its newest preview image (for the per-variant previews of the jobs list)."""
    cancel_requested: bool = False
    import_requested: bool = False
    auto_import_pending: bool = False
    """The import was requested by auto-import (not by the user): it waits for a safe moment."""
    import_note: str = ""
    """Why finished results are not imported yet (shown in the panel), e.g. "imported when the render
    finishes" or "started in another file"."""
    import_variants: set[int] | None = None
    """The variants the next import brings in (None: all)."""
    thumbnail: Path | None = None
    """The engine's turntable of the first variant, downloaded (the jobs list's thumbnail)."""
    imported: int = 0
    """How many times its results were imported into Blender."""
    created: float = field(default_factory=time.time)

    @property
    def final(self) -> bool:
        return self.ended or self.state == REFUSED

    @property
    def active(self) -> bool:
        return not self.final

    @property
    def progress(self) -> float:
        """Fraction of the whole job's training done (all variants), 0..1."""
        if self.state == "done":
            return 1.0
        if self.total <= 0:
            return 0.0
        n = max(1, self.variants)
        return min(1.0, (self.variant + self.step / self.total) / n)

    @property
    def seed_label(self) -> str:
        return ", ".join(str(s) for s in self.seeds) if self.seeds else "–"

    @property
    def ready_to_import(self) -> bool:
        """Every result the engine has is downloaded (and the job will produce no more)."""
        return self.final and bool(self.results) and all(k in self.files for k in self.results)

    def status_text(self) -> str:
        """One line for the panel: state, progress and ETA or the reason it stopped."""
        if self.state == "running":
            if not self.total:
                return f"Running: {self.message}" if self.message else "Running"
            what = f"{self.step}/{self.total}" if self.step < self.total else "exporting the mesh"
            if self.variants > 1:
                what = f"variant {self.variant + 1}/{self.variants}: {what}"
            eta = f", {format_eta(self.eta_s)} left" if self.eta_s and self.step < self.total else ""
            return f"Running {what}{eta}"
        if self.state == "queued":
            pos = f" (position {self.queue_position})" if self.queue_position else ""
            return f"Queued{pos}"
        if self.state == WAITING:
            return "Waiting for the engine to start"
        if self.state == SUBMITTING:
            return "Sending to the engine"
        if self.state == "done":
            n = len(self.results)
            return f"Done: {n} asset{'s' if n != 1 else ''}" + (", imported" if self.imported else "")
        if self.state == "interrupted":
            return "Interrupted: resumes when the engine restarts"
        return self.state.capitalize()


def format_eta(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'."""
    if seconds is None:
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def apply_event(job: JobView, ev: SSEEvent) -> None:
    """Update ``job`` with one engine event (progress, preview, status, result, error).

    Previews only record which step they show; the controller writes the image itself."""
    if ev.id is not None:
        if ev.id <= job.last_event_id:
            return  # already applied (a replay after a reconnect)
        job.last_event_id = ev.id
    d = ev.data
    if ev.type == "progress":
        job.variant = int(d.get("variant", job.variant))
        job.variants = int(d.get("variants", job.variants))
        job.step = int(d.get("step", job.step))
        job.total = int(d.get("total", job.total))
        job.its = float(d.get("its") or 0.0)
        job.eta_s = None if d.get("eta_s") is None else float(d["eta_s"])
        job.loss = None if d.get("loss") is None else float(d["loss"])
        if job.state in (SUBMITTING, "queued", "interrupted"):
            job.state = "running"
    elif ev.type == "preview":
        job.preview_step = int(d.get("step", job.preview_step))
        job.preview_variant = int(d.get("variant", 0))
    elif ev.type == "status":
        job.state = str(d.get("state", job.state))
        job.ended = bool(d.get("final", job.ended))  # the engine says when a state is its last
        job.message = str(d.get("message", ""))
        job.queue_position = d.get("queue_position")
        if d.get("variant") is not None:
            job.variant = int(d["variant"])
            if "resumed_from_step" not in d:
                job.step = 0
        if "resumed_from_step" in d:
            job.step = int(d["resumed_from_step"])
        if job.state == "failed" and not job.error:
            job.error = job.message
    elif ev.type == "result":
        job.results[int(d["variant"])] = dict(d)
    elif ev.type == "error":
        job.error = str(d.get("message", "the engine reported an error"))


def job_from_info(info: dict[str, Any], local: bool = False) -> JobView:
    """A JobView from the engine's ``GET /v1/jobs/{id}`` answer (a job from an earlier session)."""
    request = dict(info.get("request") or {})
    job = JobView(
        key=str(info["id"]),
        prompt=str(info.get("prompt") or request.get("prompt", "")),
        method=str(request.get("method", "sds")),
        request=request,
        id=str(info["id"]),
        local=local,
        created=float(info.get("created") or time.time()),
    )
    update_from_info(job, info)
    return job


def update_from_info(job: JobView, info: dict[str, Any]) -> None:
    """Refresh state, seeds, progress, results and error from a ``GET /v1/jobs/{id}`` answer."""
    job.state = str(info.get("state", job.state))
    job.ended = bool(info.get("final", job.ended))
    job.message = str(info.get("message", job.message))
    job.queue_position = info.get("queue_position")
    job.seeds = [int(s) for s in info.get("seeds") or job.seeds]
    job.variants = int(info.get("variants") or len(job.seeds) or job.variants)
    if info.get("error"):
        job.error = str(info["error"])
    p = info.get("progress")
    if p:
        job.variant, job.step, job.total = int(p["variant"]), int(p["step"]), int(p["total"])
        job.eta_s = p.get("eta_s")
    for r in info.get("results") or []:
        job.results[int(r["variant"])] = dict(r)


@dataclass
class PumpResult:
    """What one pump changed and what the bpy layer should do about it."""

    changed: bool = False
    """Anything visible changed: redraw the panel."""
    previews: list[str] = field(default_factory=list)
    """Keys of jobs whose preview image file was rewritten."""
    imports_ready: list[str] = field(default_factory=list)
    """Keys of jobs whose results are downloaded and should be imported now."""
    thumbnails: list[str] = field(default_factory=list)
    """Keys of jobs whose thumbnail image was downloaded."""
    notices: list[str] = field(default_factory=list)
    """Sentences worth printing to the console (a job finished or failed, the engine crashed)."""


# ---------------------------------------------------------------------------------------------- requests


def build_request(values: dict[str, Any]) -> dict[str, Any]:
    """The engine's job request (``POST /v1/jobs`` body) from the panel's settings.

    ``values`` holds the scene settings by name (prompt, method, preset, seed, variants, noise, the
    Advanced ones each with its ``use_…`` switch, and ``extra_options``: see :func:`parse_options`). Only what the user set is sent; the engine fills in the
    rest from the preset and the method. Raises ValueError with a readable message for bad input.
    """
    prompt = " ".join(str(values.get("prompt", "")).split())
    if not prompt:
        raise ValueError("type a prompt first, e.g. 'a red cube'")
    method = str(values.get("method", "sds")).lower()  # the engine refuses one it does not offer (422)
    request: dict[str, Any] = {
        "prompt": prompt,
        "method": method,
        "preset": str(values.get("preset", "fast")).lower(),
        "seed": int(values.get("seed", 0)),
        "variants": int(values.get("variants", 1)),
    }
    prior = str(values.get("prior", "") or "").strip()
    if prior and prior != "builtin":
        request["prior"] = prior
    noise = str(values.get("noise", "DEFAULT"))
    if noise != "DEFAULT":
        request["fixed_noise"] = noise == "FIXED"
    options: dict[str, Any] = {}
    if values.get("use_steps"):
        request["steps"] = int(values["steps"])
    if values.get("use_guidance_scale"):
        request["guidance_scale"] = float(values["guidance_scale"])
    if values.get("use_texture_size"):
        request["texture_size"] = int(values["texture_size"])
    if values.get("use_lam") and method == "esd":
        options["guidance.lam"] = float(values["lam"])
    for key, value in parse_options(str(values.get("extra_options", "") or "")).items():
        if key in options:
            raise ValueError(f"{key} is set twice: in the Advanced settings and in Extra Settings")
        options[key] = value
    if options:
        request["options"] = options
    return request


def parse_options(text: str) -> dict[str, Any]:
    """Extra run settings typed in the panel: ``dotted.path = value`` pairs separated by ``;`` or newlines.

    Values are read as JSON where they parse (``48``, ``0.5``, ``true``, ``[40, 55]``), else as text, e.g.
    ``renderer.n_samples = 48; export.resolution = 128; cameras.fov_range = [40, 55]``.
    """
    options: dict[str, Any] = {}
    for part in text.replace("\n", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, eq, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or not key or not raw:
            raise ValueError(f"extra setting {part!r} is not of the form dotted.path = value")
        if "." not in key or " " in key:
            raise ValueError(f"extra setting {key!r} is not a dotted path like renderer.n_samples")
        try:
            value = json.loads({"True": "true", "False": "false", "None": "null"}.get(raw, raw))
        except ValueError:
            value = raw
        options[key] = value
    return options


def settings_from_request(request: dict[str, Any]) -> dict[str, Any]:
    """The panel settings that make ``request`` again: the inverse of :func:`build_request` (Recall in the
    jobs list). Settings the request does not name go back to "use the default" (their switch off)."""
    seeds = [int(s) for s in request.get("seeds") or []]
    values: dict[str, Any] = {
        "prompt": str(request.get("prompt", "")),
        "method": str(request.get("method", "sds")),
        "preset": str(request.get("preset", "fast")),
        "seed": seeds[0] if seeds else int(request.get("seed", 0) or 0),
        "variants": len(seeds) if seeds else int(request.get("variants", 1) or 1),
        "seed_mode": "FIXED",  # recalled to be made again: the same seed
        "prior": str(request.get("prior") or "builtin"),
        "noise": "DEFAULT"
        if request.get("fixed_noise") is None
        else ("FIXED" if request["fixed_noise"] else "FRESH"),
        "use_steps": request.get("steps") is not None,
        "use_guidance_scale": request.get("guidance_scale") is not None,
        "use_texture_size": request.get("texture_size") is not None,
    }
    if values["use_steps"]:
        values["steps"] = int(request["steps"])
    if values["use_guidance_scale"]:
        values["guidance_scale"] = float(request["guidance_scale"])
    if values["use_texture_size"]:
        values["texture_size"] = str(int(request["texture_size"]))
    options = dict(request.get("options") or {})
    lam = options.pop("guidance.lam", None) if values["method"] == "esd" else None
    values["use_lam"] = lam is not None
    if lam is not None:
        values["lam"] = float(lam)
    values["extra_options"] = "; ".join(f"{k} = {json.dumps(v)}" for k, v in options.items())
    return values
