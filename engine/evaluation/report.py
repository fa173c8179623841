"""Where a result came from, and writers that stamp it on every table and figure.

:func:`provenance` records the command, the git commit (``+dirty`` when tracked files differ from it or
untracked, non-ignored files exist) and the machine (CPU count, torch version and threads). Every CSV
starts with ``#`` comment lines carrying it (``pandas.read_csv(path, comment="#")`` reads it), every
markdown file with a paragraph, every PNG with a footer line and the same text in its ``Description``
metadata.
"""

from __future__ import annotations

import csv
import datetime
import os
import platform
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import engine

REPO = Path(__file__).resolve().parents[2]


def git_commit(repo: Path = REPO) -> str:
    """``git rev-parse HEAD`` plus ``+dirty`` when the work tree differs from it (read-only git calls);
    "unknown" outside a repository."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)

    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return "unknown"
    modified = git("diff-index", "--quiet", "HEAD", "--").returncode != 0
    untracked = bool(git("ls-files", "--others", "--exclude-standard").stdout.strip())
    return head.stdout.strip() + ("+dirty" if modified or untracked else "")


def machine() -> dict[str, Any]:
    """CPU count, torch version and threads, Python, platform."""
    return {
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "engine": engine.__version__,
    }


def provenance(argv: Sequence[str]) -> dict[str, Any]:
    """The command (as typed, ``python scripts/evaluate.py …``), commit, machine and start time."""
    return {
        "command": shlex.join(["python", "scripts/evaluate.py", *argv]),
        "commit": git_commit(),
        "machine": machine(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def provenance_line(prov: dict[str, Any]) -> str:
    """One line: command · commit · machine."""
    m = prov["machine"]
    return (
        f"{prov['command']} · commit {prov['commit']} · {m['cpu_count']} CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads), Python {m['python']}"
    )


def write_csv(path: Path, rows: Sequence[dict[str, Any]], prov: dict[str, Any]) -> None:
    """Rows (dicts with the same keys) as CSV after ``#`` provenance lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(f"# command: {prov['command']}\n# commit: {prov['commit']}\n")
        m = prov["machine"]
        f.write(f"# machine: {m['cpu_count']} CPUs, torch {m['torch']} ({m['torch_threads']} threads)\n")
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({k: _fmt(v) for k, v in r.items()})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are shown with 3 decimals, None and NaN as "–", pipes escaped."""

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return "–" if v != v else f"{v:.3f}"
        return str(v).replace("|", "\\|")  # a bare | would end the cell

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def save_figure(fig, path: Path, prov: dict[str, Any]) -> None:
    """Save a matplotlib figure as PNG with the provenance as a footer and as ``Description`` metadata."""
    import matplotlib.pyplot as plt

    text = provenance_line(prov)
    fig.text(0.005, 0.003, text, fontsize=6, color="0.35", ha="left", va="bottom", wrap=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Description": text, "Software": "scripts/evaluate.py"})
    plt.close(fig)


def new_figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    """(figure, axes) on the non-interactive Agg backend, with room at the bottom for the footer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(bottom=0.2 if height < 4 else 0.12)
    return fig, axes


__all__ = [
    "git_commit",
    "machine",
    "markdown_table",
    "new_figure",
    "provenance",
    "provenance_line",
    "save_figure",
    "write_csv",
]


def summarise(rows: list[dict], keys: list[str], metrics: list[str]) -> list[dict]:
    """Mean of ``metrics`` per group of ``keys`` (groups in first-seen order) over the rows that did not
    diverge; ``n`` counts those, ``diverged`` the others."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for g, rs in groups.items():
        ok = [r for r in rs if not r.get("diverged")]
        entry: dict[str, Any] = {**dict(zip(keys, g)), "n": len(ok), "diverged": len(rs) - len(ok)}
        for m in metrics:
            vals = [float(r[m]) for r in ok]
            entry[m] = float(np.mean(vals)) if vals else float("nan")
        out.append(entry)
    return out
