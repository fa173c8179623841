"""Headless generation in Blender: prompt → engine → imported, textured asset(s) → a saved .blend.

    blender -b -P scripts/generate.py -- --prompt "a red cube" --out scene.blend [--method sds]
        [--seeds 0,1,2 | --seed S --variants K] [--steps N] [--engine-url URL] [--data-dir DIR] ...
    python scripts/generate.py -- --prompt "a red cube" --out scene.blend     # with the bpy module

Connects to the engine at ``--engine-url`` (default http://127.0.0.1:8765) or, when none answers, starts
one (``python -m engine.serve`` with ``--python``, default ``$TEXT3D_PYTHON``, this repo's ``.venv`` or the
current interpreter; ``--data-dir`` for its data folder) and stops it again at the end unless
``--keep-engine``. Submits one job, polls it and prints progress, then imports every variant with the add-on's
importer (a collection named for the prompt, side by side at the 3D cursor, custom properties) into the
current scene — the file Blender opened, or the default scene; ``--empty`` starts from an empty one — packs
the textures into the file and saves it. The add-on's modules are imported from ``blender_addon/`` by path:
the add-on need not be installed.

Exit codes: 0 saved; 1 the job or the engine failed; 2 bad arguments or the engine refused the request;
130 interrupted (the job is cancelled).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_addon.client import (  # noqa: E402
    EngineClient,
    EngineError,
    EngineUnreachable,
    wait_for_health,
)
from blender_addon.engine_process import (  # noqa: E402
    DEFAULT_URL,
    EngineProcess,
    default_data_dir,
    describe_exit,
    is_loopback_url,
    python_candidates,
)
from blender_addon.state import format_eta, parse_options  # noqa: E402

PRINT_EVERY_S = 5.0
"""Progress lines while training: one when something changes phase, else at most one per this many seconds."""


class Failure(Exception):
    """Stops the script with a message and an exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def script_argv(argv: list[str]) -> list[str]:
    """The script's own arguments: everything after ``--`` (Blender's and Python's way), else argv[1:]."""
    return argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="blender -b -P scripts/generate.py --",
        description="Generate 3D assets from a prompt and save them in a .blend.",
    )
    p.add_argument("--prompt", required=True, help='what to make, e.g. "a red cube"')
    p.add_argument("--out", required=True, type=Path, help="the .blend to write")
    # Methods, presets and texture sizes are the engine's (its /v1/health lists them); it refuses others
    # with a message naming the choices, so this script keeps no list of its own.
    p.add_argument("--method", default="sds", help="guidance method, e.g. sds, esd, lmc-sds (default sds)")
    p.add_argument("--preset", default="fast", help="settings preset, e.g. fast, quality (default fast)")
    p.add_argument("--prior", default=None, help="builtin (default), sd, sd:<hub id> or a diffusers folder")
    p.add_argument("--seeds", default=None, help="comma-separated seeds, one asset each (e.g. 0,1,2)")
    p.add_argument("--seed", type=int, default=None, help="seed of the first variant (default 0)")
    p.add_argument("--variants", type=int, default=1, help="assets from consecutive seeds (default 1)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps per asset (default: preset's)")
    p.add_argument("--guidance-scale", type=float, default=None, help="guidance scale (default: method's)")
    p.add_argument(
        "--texture-size", type=int, default=None, help="texture pixels, a power of two (e.g. 1024)"
    )
    p.add_argument("--lam", type=float, default=None, help="ESD's λ (method esd only)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("--fixed-noise", dest="fixed_noise", action="store_true", default=None)
    noise.add_argument("--fresh-noise", dest="fixed_noise", action="store_false")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="any other run setting, e.g. --option renderer.n_samples=48 (repeatable)",
    )
    p.add_argument("--engine-url", default=DEFAULT_URL, help=f"engine address (default {DEFAULT_URL})")
    p.add_argument("--data-dir", type=Path, default=None, help="data folder of the engine to start / use")
    p.add_argument(
        "--token-file", type=Path, default=None, help="the engine's token (default DATA_DIR/token)"
    )
    p.add_argument("--python", default=None, help="interpreter for an engine started here")
    p.add_argument("--no-start", action="store_true", help="fail instead of starting an engine")
    p.add_argument("--keep-engine", action="store_true", help="leave an engine started here running")
    p.add_argument("--empty", action="store_true", help="start from an empty scene")
    p.add_argument("--timeout", type=float, default=24 * 3600, help="give up after this many seconds")
    return p


def build_request(args: argparse.Namespace) -> dict:
    """The engine's job request from the command line (only what was given: the engine fills in the rest)."""
    prompt = " ".join(args.prompt.split())
    if not prompt:
        raise Failure("the prompt is empty: say what to generate, e.g. --prompt 'a red cube'", 2)
    request: dict = {"prompt": prompt, "method": args.method, "preset": args.preset}
    if args.seeds:
        try:
            request["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise Failure(f"--seeds must be comma-separated integers (got {args.seeds!r})", 2) from None
        if args.seed is not None or args.variants != 1:
            raise Failure("give either --seeds or --seed/--variants, not both", 2)
    else:
        request["variants"] = args.variants
        if args.seed is not None:
            request["seed"] = args.seed
    for name in ("prior", "steps", "guidance_scale", "texture_size", "fixed_noise"):
        if getattr(args, name) is not None:
            request[name] = getattr(args, name)
    try:
        options = parse_options(";".join(args.option))
    except ValueError as e:
        raise Failure(f"--option: {e}", 2) from None
    if args.lam is not None:
        if args.method != "esd":
            raise Failure("--lam applies to --method esd only", 2)
        options["guidance.lam"] = args.lam
    if options:
        request["options"] = options
    return request


def connect(args: argparse.Namespace) -> tuple[EngineClient, EngineProcess | None]:
    """A client for an engine that answers, starting one if needed (and allowed)."""
    token = args.token_file or (args.data_dir or default_data_dir()) / "token"
    try:
        client = EngineClient(args.engine_url, token)
        health = client.health(timeout=5.0)
        print(f"engine {health['version']} at {args.engine_url} on {health['device']}", flush=True)
        return client, None
    except EngineUnreachable:
        if args.no_start:
            raise Failure(f"no engine answers at {args.engine_url} (and --no-start was given)", 1) from None
    except EngineError as e:
        raise Failure(str(e), 1) from None
    if not is_loopback_url(args.engine_url):
        raise Failure(f"no engine answers at {args.engine_url}; only loopback engines are started here", 1)
    python = args.python or python_candidates(REPO)[0]
    log = (args.data_dir or default_data_dir()) / "engine.log"  # beside the jobs of the engine it belongs to
    try:
        proc = EngineProcess(python, args.engine_url, log, args.data_dir)
        proc.start()
    except ValueError as e:
        raise Failure(str(e), 1) from None
    print(f"starting the engine: {proc.describe()} (log: {log})", flush=True)
    try:
        health = wait_for_health(client, timeout=600, alive=lambda: proc.running)
    except EngineError as e:
        proc.stop()
        tail = proc.log_tail(12)
        raise Failure(
            f"the engine did not start ({e}); it {describe_exit(proc.poll())}:\n{tail}", 1
        ) from None
    print(f"engine {health['version']} started on {health['device']}", flush=True)
    return client, proc


def follow(client: EngineClient, job_id: str, proc: EngineProcess | None, timeout: float) -> dict:
    """Poll the job until it ends, printing progress; returns its final info."""
    deadline = time.monotonic() + timeout
    last_line, last_phase, last_print, lost_since = "", None, 0.0, None
    while True:
        try:
            info = client.job(job_id)
            lost_since = None
        except EngineUnreachable as e:
            if proc is not None and not proc.running:
                tail = proc.log_tail(12)
                raise Failure(f"the engine {describe_exit(proc.poll())} during the job:\n{tail}", 1) from None
            lost_since = lost_since or time.monotonic()
            if time.monotonic() - lost_since > 60:
                raise Failure(f"lost the engine for a minute: {e}", 1) from None
            time.sleep(1.0)
            continue
        line, phase = progress_line(info), progress_phase(info)
        now = time.monotonic()
        if line != last_line and (phase != last_phase or now - last_print >= PRINT_EVERY_S):
            print(line, flush=True)
            last_line, last_phase, last_print = line, phase, now
        if info.get("final"):  # the engine says when a state is its last
            return info
        if now > deadline:
            client.cancel(job_id)
            raise Failure(f"the job did not finish within {timeout:.0f} s (cancelled)", 1)
        time.sleep(0.5)


def progress_phase(info: dict) -> tuple:
    """What changes often enough to print at once: state, variant, training vs exporting."""
    p = info.get("progress") or {}
    return info["state"], p.get("variant"), p.get("step", 0) >= p.get("total", 1), info.get("message")


def progress_line(info: dict) -> str:
    state, p = info["state"], info.get("progress")
    if state == "running" and p:
        var = f"variant {p['variant'] + 1}/{p['variants']} (seed {p['seed']}) " if p["variants"] > 1 else ""
        if p["step"] >= p["total"]:
            return f"{var}exporting the mesh…"
        return f"{var}step {p['step']}/{p['total']}, {p['its']:.1f} it/s, {format_eta(p['eta_s'])} left"
    if state == "queued":
        return f"queued (position {info.get('queue_position')})"
    return f"{state}: {info.get('message', '')}"


def import_and_save(client: EngineClient, info: dict, method: str, out: Path) -> int:
    """Download every finished variant, import them into the current scene, pack textures, save."""
    import bpy

    from blender_addon import importer

    with tempfile.TemporaryDirectory(prefix="text3d-results-") as tmp:
        files = []
        for r in info["results"]:
            path = client.download(r["glb"], Path(tmp) / f"variant_{r['variant']}.glb")
            files.append(importer.ResultFile(path, int(r["seed"]), int(r["variant"])))
        try:
            objects = importer.import_results(files, job_id=info["id"], prompt=info["prompt"], method=method)
        except RuntimeError as e:
            raise Failure(f"import failed: {e}", 1) from None
        for image in bpy.data.images:  # the .glb files are temporary: keep the textures in the .blend
            if image.source == "FILE" and image.packed_file is None and image.users:
                image.pack()
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(out.resolve()))
    names = ", ".join(o.name for o in objects)
    print(f"saved {out} with {len(objects)} asset(s): {names}", flush=True)
    return len(objects)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(script_argv(sys.argv if argv is None else argv))
    proc = None
    try:
        if args.out.suffix.lower() != ".blend":
            raise Failure(f"--out must be a .blend file (got {args.out})", 2)
        request = build_request(args)
        import bpy

        if args.empty:
            bpy.ops.wm.read_factory_settings(use_empty=True)
        client, proc = connect(args)
        try:
            accepted = client.submit(request)
        except EngineError as e:
            raise Failure(
                f"the engine refused the job: {e}", 2 if e.status in (400, 413, 422) else 1
            ) from None
        job_id = accepted["id"]
        print(f"job {job_id} queued (position {accepted['queue_position']})", flush=True)
        try:
            info = follow(client, job_id, proc, args.timeout)
        except KeyboardInterrupt:
            client.cancel(job_id)
            print("interrupted: the job was cancelled", file=sys.stderr)
            return 130
        if info["state"] != "done":
            raise Failure(f"the job {info['state']}: {info.get('error') or info.get('message')}", 1)
        import_and_save(client, info, request["method"], args.out)
        return 0
    except Failure as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return e.code
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        if proc is not None and proc.running:
            if args.keep_engine:
                proc.detach()
                print(f"the engine keeps running at {args.engine_url} (pid {proc.pid})", flush=True)
            else:
                proc.stop()


if __name__ == "__main__":
    sys.exit(main())
