"""The HTTP API's typed requests, responses and event payloads (their docstrings are the OpenAPI docs).

A job request is one :class:`JobRequest`; :meth:`JobRequest.to_run` turns it into the
:class:`engine.config.RunConfig` and seeds the job runs with, once, through
``engine.config.build_config`` — nothing downstream re-parses the request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from engine.config import MAX_PROMPT_CHARS, PRESETS, RunConfig, build_config
from engine.export.config import TEXTURE_SIZES
from engine.guidance import METHODS
from engine.serve.events import JOB_STATES
from engine.serve.options import (
    MAX_OPTION_STRING,
    MAX_SEED,
    MAX_STEPS,
    SERVER_DEFAULTS,
    check_limits,
    check_text,
    coerce,
    leaf_type,
)
from engine.variants import MAX_VARIANTS, variant_seeds

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (413 above)."""
MAX_OPTIONS = 64
"""Most dotted-path options in one request."""
MAX_TEXTURE = 4096

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]
PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
TextureSize = Literal[tuple(s for s in TEXTURE_SIZES if s <= MAX_TEXTURE)]  # type: ignore[valid-type]
JobState = Literal[JOB_STATES]  # type: ignore[valid-type]
ResultKind = Literal["glb", "texture", "turntable"]

OptionKey = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=100)
]
OptionScalar = bool | int | float | Annotated[str, StringConstraints(max_length=MAX_OPTION_STRING)] | None
OptionValue = OptionScalar | Annotated[list[bool | int | float], Field(max_length=4)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True)


class _Strict(_Model):
    # Requests: no silent conversions (0 is not false, "5" is not 5); JSON numbers still fill floats.
    model_config = ConfigDict(strict=True)


class JobRequest(_Strict):
    """A text-to-3D job: one asset per seed. Named fields cover what people change most; ``options``
    sets any other run setting by its dotted path (the same names as the terminal's flags)."""

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS, examples=["a red cube"])
    """What to generate. The built-in prior knows a small vocabulary (see the README); other words are refused with the list of known ones."""
    method: MethodName = "sds"  # type: ignore[valid-type]
    """Guidance method."""
    prior: str = Field("builtin", min_length=1, max_length=MAX_OPTION_STRING)
    """builtin (the shipped CPU prior), a local diffusers folder, sd, sd:<hub id or folder>, or a hub id."""
    preset: PresetName = "fast"  # type: ignore[valid-type]
    """Settings preset applied before the explicit settings."""
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    """Optimisation steps per variant (default: the preset's)."""
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    """Seed of the first variant (default 0); variants use seed, seed+1, …"""
    seeds: list[Annotated[int, Field(ge=0, le=MAX_SEED)]] | None = Field(
        None, min_length=1, max_length=MAX_VARIANTS
    )
    """Explicit distinct seeds, one asset each (instead of seed/variants)."""
    variants: int = Field(1, ge=1, le=MAX_VARIANTS)
    """Number of assets from consecutive seeds."""
    fixed_noise: bool | None = None
    """Fixed-ε guidance: each seed fixes its own noise, so variants differ more (default: the method's)."""
    guidance_scale: float | None = None
    """Classifier-free guidance scale (default: the method's, tuned per prior); bounded by the method's
    own ``guidance.guidance_scale`` bounds and this server's limit on it."""
    texture_size: TextureSize | None = None  # type: ignore[valid-type]
    """Side of the baked base-colour texture in pixels."""
    options: dict[OptionKey, OptionValue] = Field(
        default_factory=dict,
        max_length=MAX_OPTIONS,
        # Keys must match the pattern (JSON Schema's patternProperties alone would allow any other key).
        json_schema_extra={"additionalProperties": False},
    )
    """Any other run setting by dotted path, e.g. {"renderer.n_samples": 48, "export.resolution": 128}."""

    @field_validator("prompt", "prior")
    @classmethod
    def _printable(cls, v: str, info) -> str:
        return check_text(v, info.field_name)

    def to_run(self) -> tuple[RunConfig, list[int]]:
        """The resolved config and the seeds; ValueError with a readable message for anything invalid."""
        named = {
            "train.steps": self.steps,
            "train.seed": self.seed,
            "guidance.fixed_noise": self.fixed_noise,
            "guidance.guidance_scale": self.guidance_scale,
            "export.texture_size": self.texture_size,
        }
        overrides: dict[str, Any] = dict(SERVER_DEFAULTS)
        for path, value in self.options.items():
            overrides[path] = coerce(path, value, leaf_type(path, self.method))
        for path, value in named.items():
            if value is None:
                continue
            if path in self.options:
                raise ValueError(f"{path} is given twice: as a named field and in options")
            overrides[path] = coerce(path, value, leaf_type(path, self.method))
        try:
            cfg = build_config(self.prompt, self.method, self.prior, self.preset, overrides)
        except TypeError as e:  # a type the option check did not foresee: still the client's input
            raise ValueError(f"invalid setting: {e}") from None
        check_limits(cfg)
        return cfg, variant_seeds(cfg.train.seed, self.seeds, self.variants)


class ErrorResponse(_Model):
    """Every error: one readable message (no stack traces)."""

    error: str
    """What went wrong and, where possible, what to do."""
    detail: list[dict[str, Any]] | None = None
    """For request validation errors: each problem with its location in the request."""


class JobLinks(_Model):
    """Where to follow and fetch a job."""

    job: str
    events: str
    cancel: str
    result: str
    """The first variant's .glb; add &kind=texture|turntable, or variant=k for others."""


class JobAccepted(_Model):
    """Answer to a submission (202)."""

    id: str
    """Job id: 32 hex digits."""
    state: JobState
    queue_position: int
    """1: next to run, 2: one job ahead, …"""
    links: JobLinks


class ProgressData(_Model):
    """A ``progress`` event (at most ~10 a second)."""

    variant: int
    """Index of the variant (seed) being trained, from 0."""
    variants: int
    seed: int
    step: int
    """Steps completed of this variant."""
    total: int
    loss: float | None
    its: float
    """Iterations per second (moving average)."""
    eta_s: float
    """Seconds of training left for the whole job (this variant and the ones after it; exports not included)."""


class PreviewData(_Model):
    """A ``preview`` event (a few a second at most): a small render from a camera circling the object."""

    variant: int
    step: int
    size: int
    """Width and height in pixels."""
    png: str
    """The PNG image, base64."""


class StatusData(_Model):
    """A ``status`` event: a change of the job's state."""

    state: JobState
    final: bool
    """Nothing more will happen to the job (done, failed or cancelled): the event stream ends here."""
    message: str
    variant: int | None = None
    resumed_from_step: int | None = None
    """When a variant continues from its checkpoint: the step it continues from."""
    checkpoint_step: int | None = None
    """When a job stops early (cancelled or interrupted): the step its checkpoint holds, where a
    resume continues."""
    queue_position: int | None = None


class ResultData(_Model):
    """A ``result`` event (also listed in the job): one finished variant and where to download it."""

    variant: int
    seed: int
    glb: str
    """URL path of the .glb."""
    texture: str
    turntable: str | None
    faces: int
    vertices: int
    seconds: dict[str, float]
    """Time spent: prior_load, train, export."""


class ErrorData(_Model):
    """An ``error`` event: why the job failed (followed by a ``status`` event with state failed)."""

    message: str


class JobSummary(_Model):
    """A job as listed."""

    id: str
    state: JobState
    final: bool
    """Nothing more will happen to the job (done, failed or cancelled)."""
    prompt: str
    method: str
    """Guidance method."""
    seeds: list[int]
    """One asset per seed (variant k has seeds[k])."""
    created: float
    """Unix time of submission."""
    started: float | None
    finished: float | None
    queue_position: int | None
    """0: running, 1: next, …; null when not queued."""
    cancel_requested: bool
    message: str
    """The latest status message."""
    progress: ProgressData | None
    variants: int


class JobInfo(JobSummary):
    """A job in full: request, resolved config, progress, results."""

    request: dict[str, Any]
    """The request as submitted."""
    config: dict[str, Any]
    """The fully resolved run config (seed of the first variant)."""
    results: list[ResultData]
    error: str | None
    links: JobLinks


class JobList(_Model):
    jobs: list[JobSummary]
    """Every job in this data folder, oldest first."""


class Limits(_Model):
    """What this server accepts."""

    max_body_bytes: int
    max_prompt_chars: int
    max_steps: int
    max_variants: int
    max_options: int
    texture_sizes: list[int]
    queue_size: int
    """Most jobs waiting (not counting running ones); more are refused with 429."""


class MethodInfo(_Model):
    """A guidance method as the registry describes it (menus are built from these)."""

    name: str
    """What to send as a job's ``method``."""
    label: str
    """Short display name."""
    summary: str
    """One line on what it is for."""


class PresetInfo(_Model):
    """A settings preset."""

    name: str
    """What to send as a job's ``preset``."""
    label: str
    summary: str


class Health(_Model):
    """Server state (no token needed)."""

    status: Literal["ok", "stopping"]
    version: str
    """engine.__version__"""
    device: str
    """The first worker's device, e.g. CPU or GPU (name)."""
    devices: list[str]
    workers: int
    priors: list[str]
    """Priors configured on this server (any other prior spec is accepted too)."""
    methods: list[MethodInfo]
    """Guidance methods, in display order."""
    presets: list[PresetInfo]
    queue_length: int
    """Jobs waiting."""
    running: int
    limits: Limits


EVENT_DATA: dict[str, type[BaseModel]] = {
    "progress": ProgressData,
    "preview": PreviewData,
    "status": StatusData,
    "result": ResultData,
    "error": ErrorData,
}
"""SSE event type → the model of its JSON ``data``."""


def event_stream_schema() -> dict[str, Any]:
    """JSON Schema of one Server-Sent Event (its id, event and data fields) for the OpenAPI document."""
    return {
        "type": "object",
        "description": "One Server-Sent Event; `data` is JSON whose schema depends on `event`.",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$", "description": "Increasing event id."},
            "event": {"type": "string", "enum": list(EVENT_DATA)},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "retry": {"type": "integer"},
        },
        "oneOf": [
            {
                "properties": {
                    "event": {"const": name},
                    "data": {"contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"}},
                }
            }
            for name, model in EVENT_DATA.items()
        ],
    }
