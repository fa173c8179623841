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
