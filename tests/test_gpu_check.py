"""scripts/gpu_check.py: without CUDA it says so in one line (exit 2); its comparison and timing path runs on
the CPU (``--device cpu``: the device side and the reference are both the CPU, so every error is ~0)."""

from __future__ import annotations

import subprocess
import sys

from tests.engine_server import REPO, child_env

SCRIPT = REPO / "scripts" / "gpu_check.py"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_cuda_one_line_and_exit_2():
    r = _run(CUDA_VISIBLE_DEVICES="")  # no GPU visible, on any machine
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("error: no CUDA device here") and "--device cpu" in r.stderr


def test_cpu_self_test_of_the_fast_checks():
    """The cheap seams (the prior and e2e checks take minutes on this CPU; on a GPU machine all of them run)."""
    only = "hashgrid.torch,hashgrid.tcnn,renderer,prior.sd-tiny.fp16"
    r = _run("--device", "cpu", "--quick", "--only", only)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = {line.split()[1]: line for line in r.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")}
    assert set(lines) == set(only.split(",")), r.stdout
    for name in ("hashgrid.torch", "renderer", "prior.sd-tiny.fp16"):
        assert lines[name].startswith("PASS") and "it/s" in lines[name], lines[name]
    assert lines["hashgrid.tcnn"].startswith("SKIP  hashgrid.tcnn        the device is cpu")
    assert "3 passed, 0 failed, 1 skipped" in r.stdout


def test_unknown_check_is_refused():
    r = _run("--device", "cpu", "--only", "nope")
    assert r.returncode == 2 and "unknown check" in r.stderr
