"""Helpers shared by the suites: repeated wall-clock timing of a call and the markdown tables and millisecond
strings the suites print. They measure nothing by themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def markdown_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    lines = [f"\n**{title}**\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def step_overrides(compile_grid: bool, render_size: int) -> dict[str, object]:
    """Run overrides of the suites that time training steps: no checkpoints or previews, shaded from step 0
    (as every step after the first 100 of a real run is), the hash grid compiled or not, the render size
    (0: the preset's)."""
    over: dict[str, object] = {
        "train.checkpoint_every": 0,
        "train.preview_every": 0,
        "renderer.shading_start_step": 0,
        "field.grid.compile": compile_grid,
    }
    if render_size:
        over["train.render_size"] = render_size
    return over
