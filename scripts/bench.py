"""Engine speed, side by side in one run: one suite per question, each a function returning a dict of numbers.

    python scripts/bench.py                                   # every suite (~20 min on a quiet 2-core CPU)
    python scripts/bench.py --suites hashgrid,iteration --json bench.json
    python scripts/bench.py --quick                           # tiny sizes: checks the pipeline in < 1 min
    python scripts/bench.py --suites e2e --methods sds,esd --e2e.flags="--steps 200"

Numbers quoted in docs come from this script. It prints markdown tables and, with ``--json``, writes every
number; both carry the command, the git commit and the machine (CPUs, torch threads, load average).
Timings that are compared with each other are taken in the same process and interleaved (round-robin, the
order rotated every round), so machine noise hits them alike; medians are reported.

Suites
    hashgrid   hash-grid encoding throughput (points/s, forward and forward+backward) of the fast torch
               grid, eager and compiled, against the naive reference in ``tests/fields/reference_hashgrid.py``.
    sds        SDS training steps per second at 32² and 64² with a tiny random 32 px prior: the engine's own
               cost (field, renderer, Adam) with almost no prior.
    iteration  training-step time per method with the built-in prior at the preset's render size, and its
               overhead ratio: step time ÷ (prior CFG forward + render forward/backward, each timed alone
               on the same trainer, batch and size). 1 would mean the step is nothing but those two pieces;
               the rest is the occupancy update, image encoding, Adam, and the method's own work (LMC-SDS's
               corrective, ESD/VSD's ε_ψ forward and LoRA training step).
    e2e        prompt → .glb per method: wall time of ``python -m engine.generate PROMPT --out X.glb --method
               M --quiet`` as a subprocess (what users run), split with the run's ``run.json`` into start-up,
               prior load, training and export, and the export's per-step times.
    preview    submit → first preview event on a warm ``python -m engine.serve`` (what the add-on's panel
               waits for after Generate), with the add-on's own client: median over a few jobs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # engine/ and tests/

import torch  # noqa: E402

import engine  # noqa: E402  (sets THP_MEM_ALLOC_ENABLE; torch reads it at its first big allocation, below)
from engine.cli import OneLineParser, parse_config  # noqa: E402
from scripts.benchmarks import SUITES, BenchConfig  # noqa: E402  (after engine: see above)


def git_commit() -> dict[str, Any]:
    """HEAD and whether tracked files differ from it (read-only: no optional index refresh)."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None}
    return {
        "commit": head.stdout.strip(),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip()),
    }


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "engine": engine.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "thp_mem_alloc_enable": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "load_avg_start": list(os.getloadavg()),
    }


def parse_args(argv: list[str] | None = None) -> tuple[BenchConfig, argparse.Namespace]:
    """The config (defaults or ``--quick``, then the flags given) and the parsed arguments; bad values exit 2."""
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--json", type=Path, help="also write every number to this JSON file (after each suite)"
    )
    return parse_config(parser, BenchConfig, argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg, args = parse_args(argv)
    command = ["python", *sys.argv] if argv is None else ["python", "scripts/bench.py", *argv]
    results: dict[str, Any] = {
        "command": shlex.join(command),
        "git": git_commit(),
        "machine": machine_info(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "config": dataclasses.asdict(cfg),
    }
    m, g = results["machine"], results["git"]
    print(
        f"`{results['command']}` · commit {(g['commit'] or 'unknown')[:10]}{' (dirty)' if g['dirty'] else ''} · "
        f"{m['cpu']}, {m['cpus_usable']} CPUs, {m['torch_threads']} torch threads, torch {m['torch']}, "
        f"Python {m['python']} · load average {m['load_avg_start'][0]:.2f} at start",
        flush=True,
    )
    t_all = time.perf_counter()
    for name in cfg.suites:
        t0 = time.perf_counter()
        r = SUITES[name](cfg)
        r["suite_s"] = time.perf_counter() - t0
        print(r.pop("table") + f"\n\n({name}: {r['suite_s']:.0f} s)", flush=True)
        results[name] = r
        results["total_s"] = time.perf_counter() - t_all
        m["load_avg_end"] = list(os.getloadavg())
        if args.json:  # after every suite: a failure later keeps what was measured
            args.json.write_text(json.dumps(results, indent=2))
    print(f"\ntotal {results['total_s']:.0f} s; load average {m['load_avg_end'][0]:.2f} at the end")
    if args.json:
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
