"""Atomic file writes: a reader, or a restart after a crash, sees the old file or the new one, never half.

The one way the engine writes a file others may read while it is written (job records, checkpoints,
assets, evaluation caches): write a temporary file in the same folder, then ``os.replace`` it over the
target (atomic on POSIX and Windows within one file system). On any error the temporary file goes.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        # "x": never clobber; unlike mkstemp's 0600, permissions follow the umask like any new file
        with open(tmp, mode.replace("w", "x"), **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, indent: int | None = 1) -> Path:
    """Write ``data`` as JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def write_with(path: str | os.PathLike[str], save: Callable[[IO[bytes]], None]) -> Path:
    """Atomically write what ``save(file)`` writes, e.g. ``write_with(p, lambda f: torch.save(obj, f))``."""
    with atomic_open(path, "wb") as f:
        save(f)
    return Path(path)


def write_all(files: dict[Path, bytes]) -> None:
    """Write several files as one: each to a temporary name first, then all renamed; on any error none of
    the new files is left behind (the old ones stay as they were)."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_name(path)
            temps.append((tmp, path))
            with open(tmp, "xb") as f:
                f.write(data)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def _temp_name(path: Path) -> Path:
    """A hidden name beside ``path``, unique across processes and threads."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
