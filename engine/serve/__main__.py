"""``python -m engine.serve [--host 127.0.0.1] [--port 8765] [--data-dir DIR] …`` — start the engine server.

Binds loopback only unless ``--allow-remote``; prints the URL and the token file on start. SIGINT or
SIGTERM stops cleanly: the running job checkpoints, is marked interrupted and resumes on the next start.
``--runner ray`` runs the jobs on Ray actors instead of worker threads (engine.serve.ray_cluster and
engine.serve.ray_runner, docs/RAY.md); a Ray set-up that cannot work is one line on stderr and exit code 2,
before listening.
"""

from __future__ import annotations

import gc
import ipaddress
import json
import logging
import sys
import threading
from pathlib import Path

import uvicorn

import engine  # noqa: F401  (sets THP_MEM_ALLOC_ENABLE before torch allocates)
from engine.serve import DATA_DIR_ENV, default_data_dir


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


def build_parser():
    from engine.cli import OneLineParser

    p = OneLineParser(prog="python -m engine.serve", description="Serve text-to-3D jobs over HTTP + SSE.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"jobs, results and the token file (default ${DATA_DIR_ENV} or {default_data_dir()})",
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (anyone who can reach it and has the token can run jobs)",
    )
    p.add_argument("--queue-size", type=int, default=32, help="most jobs waiting; more get 429 (default 32)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker threads (default one per device; 0 accepts jobs without running them)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (every GPU, else CPU), cpu, cuda, cuda:N (--runner ray: auto, cpu or cuda, on the cluster)",
    )
    p.add_argument(
        "--runner",
        default="thread",
        choices=["thread", "ray"],
        help="thread: worker threads in this process (default); ray: Ray actors, one per GPU (docs/RAY.md)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="--runner ray: auto (the cluster `ray start` made on this machine) or HOST:PORT of its head; "
        "default: start a local Ray in this process",
    )
    p.add_argument(
        "--ray-num-cpus", type=int, default=None, help="CPUs of the local Ray (no --ray-address; default all)"
    )
    p.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        default=None,
        help="CPUs each Ray actor reserves (default 1 per GPU actor; CPU actors share their node's CPUs)",
    )
    p.add_argument(
        "--ray-runtime-env",
        default=None,
        help='Ray runtime_env for the actors as JSON, e.g. \'{"env_vars": {"HF_HOME": "/data/hf"}}\'',
    )
    p.add_argument(
        "--ray-start-timeout", type=float, default=120.0, help="seconds a Ray worker may take to start (120)"
    )
    p.add_argument(
        "--prior", action="append", default=[], help="a prior spec to list in /v1/health (repeatable)"
    )
    p.add_argument(
        "--preload",
        default=None,
        metavar="SPEC",
        help="a prior every worker loads as soon as it starts, so the first job does not wait for it "
        "(default: the prior a job gets when it names none; 'none': load on the first job that needs it)",
    )
    p.add_argument("--keepalive", type=float, default=15.0, help="seconds between SSE keep-alives (15)")
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="(default info)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback(args.host) and not args.allow_remote:
        print(
            f"error: refusing to listen on {args.host!r}, which is not a loopback address: the engine runs "
            "jobs for anyone holding its token. Use --host 127.0.0.1, or pass --allow-remote to expose it.",
            file=sys.stderr,
        )
        return 2
    for name in ("queue_size", "keepalive"):
        if getattr(args, name) <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    if args.workers is not None and args.workers < 0:
        print("error: --workers must be >= 0", file=sys.stderr)
        return 2
    problem = _ray_flag_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")

    cluster = None
    if args.runner == "ray":
        # Before the engine's imports: a Ray set-up that cannot work answers now, and the actors import
        # torch and the engine in their processes while this process imports them below.
        try:
            cluster = _ray_cluster(args)
            cluster.start()
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    from engine.device import worker_devices
    from engine.serve.app import ServerSettings, create_app
    from engine.serve.runner import preload_spec

    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    runner = None
    try:
        preload = preload_spec(args.preload)  # the actors resolve it too; a bad one is an exit here
        settings = ServerSettings(
            data_dir=data_dir,
            queue_size=args.queue_size,
            workers=args.workers,
            device=args.device,
            priors=args.prior,
            keepalive=args.keepalive,
            preload=preload,
        )
        if cluster is not None:
            from engine.serve.ray_runner import RayJobRunner

            runner = RayJobRunner(cluster, args.queue_size)
            runner.connect()  # waits for the actors: one that cannot run the engine fails here
            print(runner.describe(), flush=True)
            app = create_app(settings, runner)
            runner.attach(app.state.store, app.state.stopping)
        else:
            worker_devices(args.device)  # a clear error now rather than in the first job
            app = create_app(settings)
    except (ValueError, OSError) as e:
        if runner is not None:
            runner.close()
        elif cluster is not None:
            cluster.close()
        print(f"error: {e}", file=sys.stderr)
        return 2

    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_timeout) + 5,
    )
    server = _Server(config, app.state.stopping)
    sock = config.bind_socket()  # exits with a logged error if the port is taken
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"engine.serve {engine.__version__} listening on http://{shown}:{port}", flush=True)
    print(f"token: {data_dir / 'token'}  (send 'Authorization: Bearer <token>')", flush=True)
    print(f"data: {data_dir}", flush=True)
    server.run(sockets=[sock])
    # Everything is written and closed by now. Freezing the heap skips the collector's walk over it when
    # the interpreter exits: ~1 s with a prior loaded (diffusers, transformers), 0.1 s frozen; a restart
    # waits for that.
    gc.freeze()
    return 0


def _ray_flag_problem(args) -> str | None:
    """What is wrong with the --ray-* flags, if anything (before anything starts)."""
    given = [
        f
        for f in ("ray_address", "ray_num_cpus", "ray_cpus_per_worker", "ray_runtime_env")
        if getattr(args, f) is not None
    ]
    if args.runner != "ray" and given:
        return f"--{given[0].replace('_', '-')} needs --runner ray"
    if args.ray_address is not None and args.ray_num_cpus is not None:
        return (
            "--ray-num-cpus sizes a local Ray; a cluster given by --ray-address has the CPUs its nodes have"
        )
    if args.ray_num_cpus is not None and args.ray_num_cpus < 1:
        return "--ray-num-cpus must be >= 1"
    if args.ray_cpus_per_worker is not None and args.ray_cpus_per_worker <= 0:
        return "--ray-cpus-per-worker must be positive"
    if args.ray_start_timeout <= 0:
        return "--ray-start-timeout must be positive"
    if args.ray_runtime_env is not None:
        try:
            env = json.loads(args.ray_runtime_env)
        except json.JSONDecodeError as e:
            return f"--ray-runtime-env is not JSON ({e.msg} at character {e.pos})"
        if not isinstance(env, dict):
            return '--ray-runtime-env must be a JSON object, e.g. \'{"env_vars": {"A": "1"}}\''
    return None


def _ray_cluster(args):
    try:
        from engine.serve.ray_cluster import RayCluster, RaySettings
    except ImportError as e:  # the optional extra is not installed
        raise ValueError(
            f"--runner ray needs the ray package ({e}): pip install -e '.[ray]' (see docs/RAY.md)"
        ) from None
    settings = RaySettings(
        address=args.ray_address,
        num_cpus=args.ray_num_cpus,
        workers=args.workers,
        device=args.device,
        cpus_per_worker=args.ray_cpus_per_worker,
        runtime_env=json.loads(args.ray_runtime_env) if args.ray_runtime_env else None,
        start_timeout=args.ray_start_timeout,
        preload=args.preload,
    )
    return RayCluster(settings)


class _Server(uvicorn.Server):
    """uvicorn's server, told about a stop the moment the signal arrives (not after connections close),
    so running jobs checkpoint right away and event streams can tell their clients "interrupted"."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event):
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig, frame) -> None:
        self._stopping.set()  # only sets a flag: safe inside a signal handler
        super().handle_exit(sig, frame)
        # Exit with status 0 after the clean shutdown instead of re-raising the signal.
        getattr(self, "_captured_signals", []).clear()


if __name__ == "__main__":
    sys.exit(main())
