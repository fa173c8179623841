"""``python -m engine.serve``: the engine over HTTP + Server-Sent Events on loopback.

Modules: ``app`` (routes, limits, errors), ``models`` (typed requests/responses/events), ``options``
(dotted-path run options: types and limits), ``jobs`` (the job store in DATA_DIR/jobs), ``runner`` (the
JobRunner interface and the local worker threads), ``events`` (event logs and the SSE stream), ``auth``
(the bearer token).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "TEXT3D_ENGINE_DATA"


def default_data_dir() -> Path:
    """``$TEXT3D_ENGINE_DATA``, else ``$XDG_DATA_HOME/text3d/engine`` (``~/.local/share/text3d/engine``)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / "text3d" / "engine"


__all__ = ["DATA_DIR_ENV", "default_data_dir"]
