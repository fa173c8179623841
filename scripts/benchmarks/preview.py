"""Submit → first preview on a warm engine: what an artist waits for after pressing Generate before the panel
shows the object forming. ``python -m engine.serve`` runs as a subprocess (as the add-on starts it); one job
warms it up (prior loaded, hash grid compiled), then each timed job is submitted with the add-on's own
client and timed from the ``POST /v1/jobs`` to the first ``preview`` event on its event stream; it is
cancelled as soon as the preview arrived.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from blender_addon.client import EngineClient
from scripts.benchmarks.common import markdown_table
from scripts.benchmarks.config import BenchConfig
from tests.engine_server import FAST_OPTIONS, EngineProcess


def _first_preview(client: EngineClient, request: dict[str, Any]) -> tuple[float, int]:
    """(seconds from submit to the first preview event, the step it shows); the job is then cancelled."""
    t0 = time.perf_counter()
    job_id = client.submit(request)["id"]
    try:
        for ev in client.events(job_id, read_timeout=300.0):
            if ev.type == "preview":
                return time.perf_counter() - t0, int(ev.data["step"])
            if ev.type == "status" and ev.data.get("final"):
                raise RuntimeError(f"job {job_id} ended without a preview: {ev.data}")
        raise RuntimeError(f"the event stream of job {job_id} ended without a preview")
    finally:
        client.cancel(job_id)


def bench_preview(cfg: BenchConfig) -> dict[str, Any]:
    """Median seconds from submit to the first preview over ``preview.jobs`` jobs on a warm engine."""
    c = cfg.preview
    request: dict[str, Any] = {"prompt": c.prompt, "method": c.method, "preset": c.preset, "steps": c.steps}
    if c.tiny:
        request["options"] = dict(FAST_OPTIONS)
    with tempfile.TemporaryDirectory() as tmp:
        server = EngineProcess(Path(tmp) / "data")
        try:
            client = EngineClient(server.url, Path(tmp) / "data" / "token")
            warm, _ = _first_preview(client, request)  # prior load + compile happen here
            times, steps = [], []
            for _ in range(c.jobs):
                seconds, step = _first_preview(client, request)
                times.append(seconds)
                steps.append(step)
        finally:
            server.stop()
    med = statistics.median(times)
    rows = [["first job (cold: prior load, compile)", f"{warm:.2f}", "–"]]
    rows.append([f"warm, median of {c.jobs}", f"{med:.2f}", ", ".join(map(str, steps))])
    return {
        "prompt": c.prompt,
        "method": c.method,
        "cold_seconds": warm,
        "warm_seconds": times,
        "warm_median_seconds": med,
        "preview_steps": steps,
        "table": markdown_table(
            f"Submit → first preview, warm engine ({c.method}, '{c.prompt}', {c.preset})",
            ["submit → first preview", "seconds", "preview at step"],
            rows,
        ),
    }
