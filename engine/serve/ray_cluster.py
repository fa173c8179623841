"""The Ray cluster of ``--runner ray``, up to the moment jobs can run: join or start Ray, plan the actors,
start them and check that they run this engine.

It imports Ray and the standard library only — not torch, not the engine's modules — so the server does
all of it before importing them: a set-up that cannot work (an unreachable address, no room, nodes
without the engine) is answered in about a second, and the actors import torch and the engine in their
own processes while the server imports them in its own (a Ray server listens ~2 s sooner than when it
started its actors after its imports). :mod:`engine.serve.ray_runner` runs the jobs on the actors; these
two modules are the only ones that import Ray, and only when ``--runner ray`` is asked for.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

import engine

log = logging.getLogger(__name__)


class RaySetupError(ValueError):
    """The Ray cluster cannot run the workers as asked; the message names the problem and the fix."""


@dataclass
class RaySettings:
    """Where and how the workers run (the ``--ray-*`` flags, ``--workers`` and ``--device``)."""

    address: str | None = None
    """None: start a local Ray inside the server; "auto": the cluster ``ray start`` made on this machine;
    HOST:PORT: the head node's GCS address (``ray start --head`` prints it)."""
    num_cpus: int | None = None
    """CPUs of the local Ray started when ``address`` is None (default: every core)."""
    workers: int | None = None
    """Actors (None: one per GPU of the cluster, or one per node where it has no GPU; 0: accept jobs but
    run none)."""
    device: str = "auto"
    """auto: GPU actors when the cluster has GPUs, else CPU actors; cpu; cuda."""
    cpus_per_worker: float | None = None
    """CPUs each actor reserves (None: 1 for GPU actors; a CPU actor gets its node's CPUs shared among the
    actors placed there). CPU actors run that many torch threads."""
    runtime_env: dict[str, Any] | None = None
    """Ray runtime_env for the actors, e.g. ``{"env_vars": {...}}`` or ``{"py_modules": [...]}``."""
    start_timeout: float = 120.0
    """Seconds a worker may take to start (scheduling, importing torch) before that is reported as an error."""
    max_worker_losses: int = 3
    """A variant whose worker dies this many times fails its job (a job that kills its worker would loop)."""
    preload: str | None = None
    """The server's ``--preload`` as given (None: the jobs' default prior; "none": nothing; else a prior
    spec). Every actor resolves it and loads that prior in the background as soon as it starts
    (replacement actors too), so its first job does not wait for the load."""


@dataclass
class Plan:
    """The actors to start: how many, their Ray options and their torch device."""

    n: int
    options: dict[str, Any]
    device: str
    torch_threads: int
    describe: str


class WorkerActor:
    """The Ray actor: an :class:`engine.serve.worker.EngineWorker` made in the actor's own process, its
    methods passed through. The class lives here, without the engine's imports, so that the server can
    start actors before it has imported torch; the actor imports the engine when it starts."""

    def __init__(self, preload: str | None = None, **worker_args: Any):
        from engine.serve.runner import preload_spec
        from engine.serve.worker import EngineWorker

        self._worker = EngineWorker(**worker_args)
        try:
            spec = preload_spec(preload)
        except ValueError as e:  # the server refuses it with this message and stops the actor
            log.warning("no preload: %s", e)
            spec = None
        if spec:
            self._worker.preload(spec)

    def info(self) -> dict[str, Any]:
        return self._worker.info()

    def preload(self, spec: str) -> None:
        self._worker.preload(spec)

    def drain(self) -> list[tuple]:
        return self._worker.drain()

    def cancel(self, task_id: str) -> None:
        self._worker.cancel(task_id)

    def run(self, task):
        return self._worker.run(task)


class RayCluster:
    """This server's place on a Ray cluster: the connection, the plan and the actors it starts (named
    ``worker-<k>`` in a namespace of its own). ``start()`` joins and starts the actors without waiting,
    ``ready()`` waits until they run; both raise :class:`RaySetupError` naming the problem and the fix."""

    def __init__(self, settings: RaySettings):
        self.settings = settings
        self.namespace = f"text3d-{uuid.uuid4().hex[:8]}"
        """Ray namespace of this server's actors, so servers sharing a cluster never meet."""
        self.plan: Plan | None = None
        self.started_ray = False
        """Whether this process started the Ray it uses (and so stops it)."""
        self._starting: list = []

    def start(self) -> None:
        """Join or start Ray, plan the actors and start them; returns at once (see ``ready``)."""
        try:
            self.started_ray = _connect(self.settings, self.namespace)
            self.plan = _plan(self.settings)
            self._starting = [self.spawn(k) for k in range(self.plan.n)]
        except BaseException as e:
            self._fail(e)

    def ready(self) -> list[tuple[Any, dict[str, Any]]]:
        """(actor, its info) of every actor ``start`` made, once each runs the engine."""
        actors, self._starting = self._starting, []
        try:
            infos = wait_ready(actors, self.settings.start_timeout, self.plan)
        except BaseException as e:
            for a in actors:
                kill(a)
            self._fail(e)
        return list(zip(actors, infos))

    def spawn(self, index: int):
        """Start actor ``worker-<index>`` (Ray queues calls to it until it runs)."""
        assert self.plan is not None
        p = self.plan
        return (
            ray.remote(WorkerActor)
            .options(name=f"worker-{index}", namespace=self.namespace, **p.options)
            .remote(device=p.device, torch_threads=p.torch_threads, preload=self.settings.preload)
        )

    def describe(self, workers: int) -> str:
        """One line for the server's start-up output."""
        ctx = ray.get_runtime_context()
        where = "a local Ray started by this server" if self.started_ray else "the Ray cluster"
        return (
            f"ray: {workers} worker(s) ({self.plan.describe if self.plan else 'none'}) on {where} "
            f"at {ctx.gcs_address}, namespace {self.namespace}"
        )

    def close(self) -> None:
        """Stop the actors still starting, and the local Ray if this server started it."""
        for a in self._starting:
            kill(a)
        self._starting = []
        if self.started_ray and ray.is_initialized():
            ray.shutdown()
            self.started_ray = False

    def _fail(self, e: BaseException):
        self.close()
        if isinstance(e, RaySetupError) or not isinstance(e, Exception):
            raise e
        raise RaySetupError(f"cannot start the Ray workers: {first_line(e)}") from e


def _connect(s: RaySettings, namespace: str) -> bool:
    """Start or join Ray; True when this process started it (and so stops it)."""
    if ray.is_initialized():
        return False
    if s.address is None:
        ray.init(
            address="local",  # never a cluster someone else started: that takes --ray-address
            num_cpus=s.num_cpus or os.cpu_count(),
            include_dashboard=False,
            namespace=namespace,
            logging_level=logging.WARNING,
        )
        return True
    if s.address != "auto":
        _check_reachable(s.address)
    try:
        ray.init(address=s.address, namespace=namespace, logging_level=logging.WARNING)
    except ConnectionError as e:
        auth = (
            ""
            if os.environ.get("RAY_AUTH_MODE") or s.address == "auto"
            else "; if it uses token authentication (Ray's default), set RAY_AUTH_MODE=token and give this "
            "machine the head's token (~/.ray/auth_token or RAY_AUTH_TOKEN)"
        )
        raise RaySetupError(
            f"cannot join a Ray cluster at --ray-address {s.address} ({first_line(e)}): start one with "
            f"`ray start --head` (docs/RAY.md), or leave out --ray-address to start a local one{auth}"
        ) from None
    except Exception as e:  # version mismatch, authentication, …
        hint = (
            "copy the head's ~/.ray/auth_token to this machine or set RAY_AUTH_TOKEN"
            if "auth" in str(e).lower()
            else "use the same Ray version as the cluster (pip install -e '.[ray]')"
        )
        raise RaySetupError(f"cannot join the Ray cluster at {s.address}: {first_line(e)}; {hint}") from None
    return False


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's own retries, when nothing listens at HOST:PORT."""
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise RaySetupError(
            f"--ray-address {address!r} is not HOST:PORT or auto: give the address `ray start --head` printed"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3):
            pass
    except OSError as e:
        raise RaySetupError(
            f"cannot reach the Ray cluster at {hostport} ({e.strerror or e}): start it with `ray start --head` "
            "on that machine, or check the address and the firewall"
        ) from None


def _plan(s: RaySettings) -> Plan:
    """How many actors of which kind, from the flags and what the cluster has; refuses what cannot fit."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    node_cpus = [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]
    node_cpus = [c for c in node_cpus if c > 0]
    pref = (s.device or "auto").strip().lower()
    if pref not in ("auto", "cpu", "cuda"):
        raise RaySetupError(
            f"--device {s.device} with --runner ray: use auto, cpu or cuda (Ray gives each GPU actor one GPU)"
        )
    use_gpu = gpus > 0 if pref == "auto" else pref == "cuda"
    common = {"max_concurrency": 4, "max_restarts": 0, "scheduling_strategy": "SPREAD"}
    if s.runtime_env:
        common["runtime_env"] = s.runtime_env
    if use_gpu:
        if gpus == 0:
            raise RaySetupError(
                "--device cuda: the Ray cluster has no GPU; join GPU machines with `ray start --address …` "
                "(docs/RAY.md) or use --device auto"
            )
        n = gpus if s.workers is None else s.workers
        if n > gpus:
            raise RaySetupError(
                f"{n} GPU workers asked for, but the Ray cluster has {gpus} GPU(s): lower --workers or add GPUs"
            )
        cpus = s.cpus_per_worker or 1.0
        return Plan(n, {**common, "num_gpus": 1, "num_cpus": cpus}, "cuda", max(1, int(cpus)), "GPU actors")
    if not node_cpus:
        raise RaySetupError("the Ray cluster has no node with CPUs: start the nodes with `ray start` first")
    n = len(node_cpus) if s.workers is None else s.workers
    per_node = math.ceil(max(n, 1) / len(node_cpus))
    cpus = s.cpus_per_worker or max(1.0, float(int(min(node_cpus) // per_node)))
    fits = sum(int(c // cpus) for c in node_cpus)
    if n > fits:
        have = " + ".join(f"{c:g}" for c in node_cpus)
        raise RaySetupError(
            f"{n} CPU workers of {cpus:g} CPU(s) each do not fit the Ray cluster ({have} CPUs): "
            "lower --workers or --ray-cpus-per-worker, or add nodes"
        )
    return Plan(
        n, {**common, "num_cpus": cpus}, "cpu", max(1, int(cpus)), f"CPU actors, {cpus:g} CPU(s) each"
    )


def wait_ready(actors: list, timeout: float, plan: Plan | None) -> list[dict[str, Any]]:
    """Every actor's info() once it runs; RaySetupError when one cannot start or import the engine."""
    if not actors:
        return []
    refs = [a.info.remote() for a in actors]
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    infos = []
    for k, ref in enumerate(refs):
        if ref not in ready:
            free = ray.available_resources()
            if plan is not None and _has_room(free, plan):
                # Room but no actor: resources are not the reason, so do not send the user after them; a
                # worker that is slow or failing to start is nearly always the node's Python.
                raise RaySetupError(
                    f"Ray worker {k} did not start within {timeout:g} s although the cluster has room for it "
                    f"(free: {free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU): its Python most likely "
                    "cannot import the engine or a dependency; install this package on every node, in the "
                    "Python that runs `ray start` (pip install -e '.[ray]'), or ship it with --ray-runtime-env; "
                    "the node's Ray logs say why (/tmp/ray/session_latest/logs/worker-*.err)"
                )
            raise RaySetupError(
                f"Ray worker {k} did not start within {timeout:g} s: no node has a free "
                f"{'GPU' if plan and plan.device == 'cuda' else 'CPU share'} for it right now (free: "
                f"{free.get('CPU', 0):g} CPU, {free.get('GPU', 0):g} GPU), or it is slow to start; free "
                "them, lower --workers or --ray-cpus-per-worker, or raise --ray-start-timeout"
            )
        try:
            info = ray.get(ref, timeout=10)
        except (RayActorError, GetTimeoutError, ray.exceptions.RayError) as e:
            log.debug("worker %d failed to start: %s", k, e)  # the whole traceback, for --log-level debug
            raise RaySetupError(_start_failure(k, e)) from None
        if info["engine"] != engine.__version__:
            raise RaySetupError(
                f"Ray worker {k} on {info['node']} runs engine {info['engine']}, this server {engine.__version__}: "
                "install the same version on every node"
            )
        infos.append(info)
    return infos


def _has_room(free: dict[str, float], plan: Plan) -> bool:
    """Whether the cluster's free resources could hold one more actor of ``plan``."""
    need = {"CPU": plan.options.get("num_cpus", 0), "GPU": plan.options.get("num_gpus", 0)}
    return all(free.get(key, 0) >= amount for key, amount in need.items())


def _start_failure(k: int, e: BaseException) -> str:
    line = first_line(e)
    if re.search(r"No module named '?engine\b|module 'engine' has no attribute|from 'engine", line):
        return (
            f"the Ray workers cannot import the engine ({line}): install this package on every node, in the "
            "Python that runs `ray start` (pip install -e '.[ray]'), or ship it with --ray-runtime-env"
        )
    return f"Ray worker {k} failed to start: {line}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def first_line(e: BaseException) -> str:
    """The line that says what went wrong: for an error raised on a worker (its traceback is in the text)
    the exception's own last line, else the message's first line."""
    lines = [_ANSI.sub("", ln).strip() for ln in str(e).splitlines()]
    lines = [ln for ln in lines if ln]
    raised = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    line = raised[-1] if isinstance(e, ray.exceptions.RayError) and raised else (lines[0] if lines else "")
    return line[:300] or type(e).__name__


def where(info: dict[str, Any]) -> tuple[str, Any]:
    return info.get("node", "?"), info.get("pid", "?")


def kill(actor) -> None:
    if actor is None:
        return
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone, or Ray is shutting down
        pass


__all__ = ["Plan", "RayCluster", "RaySettings", "RaySetupError", "WorkerActor"]
