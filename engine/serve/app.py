"""The HTTP app: its settings and routes. Jobs are stored by :mod:`engine.serve.jobs`, run by a
:class:`engine.serve.runner.JobRunner`, and streamed by :mod:`engine.serve.events`; the body limit and the
error responses are :mod:`engine.serve.http`'s."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException

import engine
from engine.config import MAX_PROMPT_CHARS, preset_catalog
from engine.export.config import TEXTURE_SIZES
from engine.export.pipeline import output_paths
from engine.guidance import method_catalog
from engine.priors import SHIPPED_PRIORS
from engine.serve.auth import BearerAuth, ensure_token
from engine.serve.events import EventWriter, sse_stream
from engine.serve.http import BodyLimit, add_error_handlers
from engine.serve.jobs import JOB_ID, JobRecord, JobStore
from engine.serve.models import (
    EVENT_DATA,
    MAX_BODY_BYTES,
    MAX_OPTIONS,
    MAX_TEXTURE,
    ErrorResponse,
    Health,
    JobAccepted,
    JobInfo,
    JobLinks,
    JobList,
    JobRequest,
    JobSummary,
    Limits,
    MethodInfo,
    PresetInfo,
    ResultKind,
    event_stream_schema,
)
from engine.serve.options import MAX_STEPS
from engine.serve.runner import JobRunner, LocalJobRunner, QueueFull
from engine.variants import MAX_VARIANTS

log = logging.getLogger(__name__)


@dataclass
class ServerSettings:
    """How a server instance runs (the command-line flags of ``python -m engine.serve``)."""

    data_dir: Path
    """Jobs, the token file and results live here."""
    queue_size: int = 32
    """Most jobs waiting; more are refused with 429."""
    workers: int | None = None
    """Worker threads (None: one per device; 0: accept jobs but run none)."""
    device: str = "auto"
    """auto (every GPU, else the CPU), cpu, cuda, cuda:N."""
    priors: list[str] = field(default_factory=list)
    """Extra prior specs listed by /v1/health besides builtin."""
    keepalive: float = 15.0
    """Seconds between SSE keep-alive comments."""
    shutdown_timeout: float = 60.0
    """How long a stop waits for running jobs to checkpoint (an export in progress finishes first)."""
    preload: str | None = None
    """A prior spec every worker loads as soon as it starts, so that the first job does not wait for it
    (``python -m engine.serve`` preloads the default prior); None: each worker loads a prior when a job
    first needs it."""


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        401: "Missing or wrong bearer token.",
        404: "No such job (or variant).",
        422: "Invalid request.",
    }.items()
}

JobId = Annotated[str, PathParam(pattern=JOB_ID.pattern, description="Job id (32 hex digits).")]


def create_app(settings: ServerSettings, runner: JobRunner | None = None) -> FastAPI:
    """The app for one data folder. The runner defaults to :class:`LocalJobRunner` on engine.device's choice."""
    from engine.device import worker_devices

    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    token = ensure_token(data_dir)
    stopping = threading.Event()
    writer = EventWriter()
    store = JobStore(data_dir, writer)
    if runner is None:
        runner = LocalJobRunner(
            store,
            worker_devices(settings.device),
            settings.queue_size,
            settings.workers,
            stopping,
            preload=settings.preload,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner.start(store.load_all())
        yield
        stopping.set()
        runner.begin_shutdown()
        runner.join(settings.shutdown_timeout)
        writer.flush()
        writer.close()

    app = FastAPI(
        title="text3d engine",
        version=engine.__version__,
        description="Text-to-3D jobs over HTTP with Server-Sent Events. Every /v1 endpoint except "
        "/v1/health needs `Authorization: Bearer <token>` with the token from DATA_DIR/token.",
        docs_url=None,  # the docs pages load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.stopping = stopping
    app.state.store = store
    app.state.runner = runner
    # Outermost first: auth before anything reads the body.
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(BearerAuth, token=token)
    add_error_handlers(app)

    bearer = HTTPBearer(auto_error=False, description="The token in the server's DATA_DIR/token file.")
    api = APIRouter(prefix="/v1", dependencies=[Depends(bearer)], responses=ERRORS)

    def get_job(job_id: str) -> JobRecord:
        job = store.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    def links(job_id: str) -> JobLinks:
        base = f"/v1/jobs/{job_id}"
        return JobLinks(
            job=base, events=base + "/events", cancel=base + "/cancel", result=base + "/result?variant=0"
        )

    def summary(job: JobRecord) -> dict[str, Any]:
        return dict(
            id=job.id,
            state=job.state,
            final=job.final,
            prompt=job.config.prompt,
            method=job.config.method,
            seeds=job.seeds,
            created=job.created,
            started=job.started,
            finished=job.finished,
            queue_position=runner.queue_position(job.id),
            cancel_requested=job.cancel_reason == "cancel",
            message=job.message,
            progress=job.progress,
            variants=len(job.seeds),
        )

    def info(job: JobRecord) -> JobInfo:
        return JobInfo(
            **summary(job),
            request=job.request,
            config=job.config.to_dict(),
            results=[job.results[k] for k in sorted(job.results)],
            error=job.error,
            links=links(job.id),
        )

    @app.get("/v1/health", response_model=Health, tags=["server"])
    def health() -> Health:
        """Server state, versions and what it can run. No token needed."""
        devices = runner.devices()
        return Health(
            status="stopping" if stopping.is_set() else "ok",
            version=engine.__version__,
            device=devices[0],
            devices=devices,
            workers=runner.workers(),
            priors=list(dict.fromkeys([*SHIPPED_PRIORS, *settings.priors])),
            methods=[MethodInfo(**m) for m in method_catalog()],
            presets=[PresetInfo(**p) for p in preset_catalog()],
            queue_length=runner.queue_length(),
            running=runner.running(),
            limits=Limits(
                max_body_bytes=MAX_BODY_BYTES,
                max_prompt_chars=MAX_PROMPT_CHARS,
                max_steps=MAX_STEPS,
                max_variants=MAX_VARIANTS,
                max_options=MAX_OPTIONS,
                texture_sizes=[s for s in TEXTURE_SIZES if s <= MAX_TEXTURE],
                queue_size=settings.queue_size,
            ),
        )

    @api.post(
        "/jobs",
        status_code=202,
        response_model=JobAccepted,
        tags=["jobs"],
        responses={
            400: {"model": ErrorResponse, "description": "The body could not be read (e.g. not UTF-8)."},
            413: {"model": ErrorResponse, "description": "The body is too large."},
            429: {"model": ErrorResponse, "description": "The queue is full (or the server is stopping)."},
        },
    )
    def submit(
        request: JobRequest,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=128,
                description="A client-chosen key (e.g. a UUID) naming this submission: sending it again "
                "(a retry after a dropped connection) returns the job it created instead of a second one.",
            ),
        ] = None,
    ) -> JSONResponse:
        """Queue a job. The request is validated and resolved into a run config at once (422 with the
        reason if anything is wrong, including words the prior does not know), before the queue is
        looked at: a bad request is a 422 whether or not there is room."""
        if idempotency_key:
            earlier = next(
                (j for j in store.all() if j.request.get("idempotency_key") == idempotency_key), None
            )
            if earlier is not None:  # a retry of a submission that reached us: the same job, not a new one
                body = JobAccepted(
                    id=earlier.id,
                    state=earlier.state,
                    queue_position=runner.queue_position(earlier.id) or 0,
                    links=links(earlier.id),
                )
                headers = {"Location": f"/v1/jobs/{earlier.id}", "Idempotent-Replayed": "true"}
                return JSONResponse(body.model_dump(), status_code=202, headers=headers)
        try:
            cfg, seeds = request.to_run()
            runner.check(cfg)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        if runner.queue_full():
            raise HTTPException(
                429, f"the queue is full ({settings.queue_size} jobs waiting); try again later"
            )
        record = request.model_dump(mode="json") | (
            {"idempotency_key": idempotency_key} if idempotency_key else {}
        )
        job = store.create(record, cfg, seeds)
        try:
            pos = runner.submit(job)
        except QueueFull as e:
            store.discard(job)
            raise HTTPException(429, str(e)) from None
        body = JobAccepted(id=job.id, state="queued", queue_position=pos, links=links(job.id))
        return JSONResponse(body.model_dump(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    @api.get("/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs() -> JobList:
        """Every job in the data folder (finished ones included), oldest first."""
        return JobList(jobs=[JobSummary(**summary(j)) for j in store.all()])

    @api.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
    def get(job_id: JobId) -> JobInfo:
        """A job's state, progress, resolved config and results."""
        return info(get_job(job_id))

    @api.post(
        "/jobs/{job_id}/cancel",
        response_model=JobInfo,
        tags=["jobs"],
        responses={202: {"model": JobInfo, "description": "Cancelling a running job: watch its events."}},
    )
    def cancel(job_id: JobId) -> JSONResponse:
        """Drop a queued job (200, cancelled) or stop a running one (202: it checkpoints and reports a
        ``status`` event with state cancelled within about a second). A finished job is left as it is."""
        job = get_job(job_id)
        if job.final:
            return JSONResponse(info(job).model_dump(), status_code=200)
        runner.cancel(job)
        code = 200 if job.final else 202
        return JSONResponse(info(job).model_dump(), status_code=code)

    @api.get(
        "/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "text/event-stream. Events: `progress` (ProgressData), `preview` "
                "(PreviewData), `status` (StatusData), `result` (ResultData), `error` (ErrorData); each "
                "has an increasing `id`. Comments (`: keep-alive`) every ~15 s. The stream ends after the "
                "status event with a final state (done, failed, cancelled).",
                "content": {"text/event-stream": {"schema": event_stream_schema()}},
            }
        },
    )
    async def events(
        job_id: JobId,
        last_event_id: Annotated[
            str,
            Header(
                alias="Last-Event-ID",
                pattern=r"^[0-9]{1,18}$",
                description="Resume after this event id (EventSource sends it on reconnects).",
            ),
        ] = "0",
    ) -> StreamingResponse:
        """The job's events as Server-Sent Events: everything so far (after ``Last-Event-ID``), then live."""
        job = get_job(job_id)

        def finished() -> bool:
            return job.closed or runner.stopped()

        return StreamingResponse(
            sse_stream(job.events, int(last_event_id), finished, settings.keepalive),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get(
        "/jobs/{job_id}/result",
        tags=["jobs"],
        response_class=FileResponse,
        responses={
            200: {
                "description": "The file: model/gltf-binary for glb, image/png for texture and turntable.",
                "content": {
                    "model/gltf-binary": {"schema": {"type": "string", "format": "binary"}},
                    "image/png": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            409: {"model": ErrorResponse, "description": "That variant has not finished yet."},
        },
    )
    def result(
        job_id: JobId,
        variant: Annotated[int, Query(ge=0, lt=MAX_VARIANTS, description="Variant index, from 0.")] = 0,
        kind: Annotated[ResultKind, Query(description="Which file.")] = "glb",  # type: ignore[valid-type]
    ) -> FileResponse:
        """Download a finished variant's .glb, or its baked texture or turntable image."""
        job = get_job(job_id)
        variants = job.variants()
        if variant >= len(variants):
            raise HTTPException(
                404, f"job {job_id} has {len(variants)} variant(s); variant={variant} does not exist"
            )
        if variant not in job.results:
            raise HTTPException(
                409, f"variant {variant} of job {job_id} is not finished (job state: {job.state})"
            )
        v = variants[variant]
        path = output_paths(v.asset, False, True)[kind]
        if not path.is_file():
            raise HTTPException(404, f"variant {variant} of job {job_id} has no {kind} file")
        media = "model/gltf-binary" if kind == "glb" else "image/png"
        return FileResponse(path, media_type=media, filename=_download_name(job, v.seed, kind))

    app.include_router(api)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            # The SSE payload models are referenced from the event-stream schema only: add them.
            for model in EVENT_DATA.values():
                schema["components"]["schemas"][model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _download_name(job: JobRecord, seed: int, kind: str) -> str:
    """e.g. a_red_cube_s0.glb, a_red_cube_s0_texture.png."""
    slug = re.sub(r"[^a-z0-9]+", "_", job.config.prompt.lower()).strip("_")[:40] or "asset"
    return f"{slug}_s{seed}" + {"glb": ".glb", "texture": "_texture.png", "turntable": "_turntable.png"}[kind]
