"""The suites of ``scripts/bench.py``, one module each; ``SUITES`` maps a suite's name to its function, which
takes the ``BenchConfig`` and returns a dict of numbers plus a markdown ``table``. What each suite measures
is in its module's docstring (and in ``scripts/bench.py --help``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Before anything below imports torch: engine sets THP_MEM_ALLOC_ENABLE, which torch reads at its first big
# allocation; importing engine here makes that hold for every way into this package.
import engine  # noqa: F401
from scripts.benchmarks.config import BenchConfig
from scripts.benchmarks.e2e import bench_e2e
from scripts.benchmarks.hashgrid import bench_hashgrid
from scripts.benchmarks.iteration import bench_iteration
from scripts.benchmarks.preview import bench_preview
from scripts.benchmarks.regularizers import bench_regularizers
from scripts.benchmarks.sds import bench_sds

__all__ = ["SUITES", "BenchConfig"]

SUITES: dict[str, Callable[[BenchConfig], dict[str, Any]]] = {
    "hashgrid": bench_hashgrid,
    "sds": bench_sds,
    "iteration": bench_iteration,
    "regularizers": bench_regularizers,
    "e2e": bench_e2e,
    "preview": bench_preview,
}
