"""Per-job dispatch overhead of the Ray runner against the thread runner (docs/RAY.md).

    python scripts/bench_ray.py [--steps 60] [--rounds 3] [--threads 1]

Starts one server per runner (thread: worker threads; ray: a local Ray of ``--threads`` CPUs with one CPU
actor, so both train with ``--threads`` torch threads), sends each the same small job (``--steps`` steps, 32² renders, the test suite's
tiny grid) after one warm-up job (the prior load), alternating between the servers so that a busy machine
slows both alike, and prints each job's time from submission to done as the server recorded it
(``finished − created``), the medians and the Ray runner's overhead in seconds and in per cent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from tests.engine_server import FAST_OPTIONS, EngineProcess  # noqa: E402


def run_job(server: EngineProcess, client: httpx.Client, steps: int, seed: int) -> float:
    body = {
        "prompt": "a red cube",
        "steps": steps,
        "seed": seed,
        "texture_size": 256,
        "options": FAST_OPTIONS,
    }
    r = client.post("/v1/jobs", json=body)
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        info = client.get(f"/v1/jobs/{job_id}").json()
        if info["final"]:
            break
        time.sleep(0.05)
    if info["state"] != "done":
        raise SystemExit(f"job on {server.url} ended {info['state']}: {info['message']}\n{server.log()}")
    return info["finished"] - info["created"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of both runners (the local Ray gets as many CPUs)",
    )
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the thread runner's server process; Ray sets its own
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        for name in ("thread", "ray"):
            (Path(tmp) / name).mkdir()
        servers = {
            "thread": EngineProcess(Path(tmp) / "thread" / "data"),
            "ray": EngineProcess(
                Path(tmp) / "ray" / "data", "--runner", "ray", "--ray-num-cpus", str(args.threads)
            ),
        }
        try:
            clients = {}
            for name, s in servers.items():
                token = (s.data_dir / "token").read_text().strip()
                clients[name] = httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {token}"})
                print(f"{name}: warm-up job {run_job(s, clients[name], 5, 99):.2f} s", flush=True)
            times: dict[str, list[float]] = {name: [] for name in servers}
            for k in range(args.rounds):
                order = list(servers) if k % 2 == 0 else list(reversed(servers))
                for name in order:
                    times[name].append(run_job(servers[name], clients[name], args.steps, k))
                print(
                    f"round {k + 1}: " + ", ".join(f"{n} {t[-1]:.2f} s" for n, t in times.items()), flush=True
                )
        finally:
            for s in servers.values():
                s.stop()
    med = {n: statistics.median(t) for n, t in times.items()}
    over = med["ray"] - med["thread"]
    print(
        f"{args.steps}-step job, {args.threads} torch thread(s), median of {args.rounds}: thread {med['thread']:.2f} s, ray {med['ray']:.2f} s; "
        f"Ray dispatch overhead {over:+.2f} s ({100 * over / med['thread']:+.1f} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
