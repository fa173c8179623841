"""Which weights a prior is: its folder and a fingerprint of its UNet weights, without loading it.

Everything keyed on a prior (its tuned settings, the manifold corrective made for it) asks this module,
so the same weights get the same treatment however they were named (``builtin``, ``engine/priors/builtin``,
``pixel:/abs/path``, a copy elsewhere), and other weights under a familiar name do not.

The fingerprint is cheap enough to compute per request: a weight file up to :data:`FULL_HASH_BYTES` is
hashed whole (the built-in prior's 7 MB UNet), a larger one (Stable Diffusion's gigabytes) by its size
and its first and last :data:`SAMPLE_BYTES` (the safetensors header, with every tensor's name, dtype,
shape and offset, and tensor data at both ends); results are cached per file size and modification time.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

FULL_HASH_BYTES = 64 << 20
"""Weight files up to this size are hashed whole."""
SAMPLE_BYTES = 4 << 20
"""Bytes hashed at each end of a larger weight file."""


@dataclass(frozen=True)
class PriorIdentity:
    """A resolved prior: where its weights are and which weights they are."""

    source: str
    """The local folder (absolute) or the model hub id the weights come from."""
    folder: Path | None
    """The local diffusers folder; None for a hub id."""
    fingerprint: str | None
    """16 hex digits identifying the UNet weights of a local folder; None for a hub id."""


def weights_fingerprint(folder: str | os.PathLike[str] | None) -> str | None:
    """Fingerprint of the UNet weights in a diffusers folder (``unet/*.safetensors``, else ``*.bin``);
    None when there is no such folder or no weight file."""
    if folder is None:
        return None
    unet = Path(folder) / "unet"
    files = sorted(unet.glob("*.safetensors")) or sorted(unet.glob("*.bin"))
    if not files:
        return None
    return _fingerprint(tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=64)
def _fingerprint(files: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over the weight files in order (whole, or size + both ends for a large one), cached per
    (path, size, mtime) of every file. For small files this is the sha256 of their concatenation."""
    h = hashlib.sha256()
    for path, size, _mtime in files:
        with open(path, "rb") as f:
            if size <= FULL_HASH_BYTES:
                h.update(f.read())
            else:
                h.update(size.to_bytes(8, "little"))
                h.update(f.read(SAMPLE_BYTES))
                f.seek(size - SAMPLE_BYTES)
                h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()[:16]


def identify_folder(folder: str | os.PathLike[str]) -> PriorIdentity:
    """The identity of the prior in a local diffusers folder."""
    path = Path(folder).expanduser().resolve()
    return PriorIdentity(str(path), path, weights_fingerprint(path))


def is_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an existing folder; False (not an error) for names the OS cannot look up at all,
    e.g. longer than a file name may be: the caller then says what forms it accepts."""
    try:
        return Path(path).expanduser().is_dir()
    except (OSError, ValueError):
        return False


def identify_source(source: str) -> PriorIdentity:
    """The identity of a folder or a model hub id (a hub id has no folder and no fingerprint)."""
    if is_folder(source):
        return identify_folder(source)
    return PriorIdentity(source, None, None)
