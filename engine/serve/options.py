"""Dotted-path run options sent by clients (``{"renderer.n_samples": 48}``): type checks and server limits.

``engine.config.build_config`` sets overrides without looking at their types, so a client's value is
checked here against the annotation of the config field it targets first (a string where an int
belongs would otherwise fail deep inside the trainer). Limits bound everything that costs memory or
time, on the *resolved* config, so presets and options are held to the same bounds.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
import unicodedata
from typing import Any, Literal

from engine.config import RunConfig
from engine.guidance import METHODS

MAX_STEPS = 20000
"""Most optimisation steps per variant a server accepts."""
MAX_OPTION_STRING = 1024
"""Longest string value of an option (prior folders, corrective model paths)."""
MAX_SEED = 2**31 - 1

SERVER_DEFAULTS: dict[str, Any] = {"train.preview_every": 25}
"""Defaults of the server that differ from the terminal's (the request's options override them):
previews every 25 steps give a live view several times a minute without slowing training."""

FORBIDDEN: dict[str, str] = {
    "train.device": "the server assigns each job to one of its worker devices (see /v1/health)",
    "prompt": "give it as the request's prompt",
    "method": "give it as the request's method",
    "prior": "give it as the request's prior",
    "preset": "give it as the request's preset",
}

LIMITS: dict[str, tuple[float, float]] = {
    "train.steps": (1, MAX_STEPS),
    "train.batch_size": (1, 8),
    "train.render_size": (8, 512),
    "train.preview_size": (8, 256),
    "train.preview_every": (0, MAX_STEPS),
    "train.checkpoint_every": (0, MAX_STEPS),
    "train.seed": (0, MAX_SEED),
    "field.grid.n_levels": (1, 32),
    "field.grid.n_features_per_level": (1, 8),
    "field.grid.log2_hashmap_size": (8, 24),
    "field.grid.base_resolution": (2, 4096),
    "field.grid.max_resolution": (2, 32768),
    "field.hidden_dim": (4, 256),
    "field.coarse_to_fine.start_levels": (0, 32),
    "regularizers.normal_smooth_points": (1, 1 << 16),
    "renderer.n_samples": (4, 512),
    "renderer.occupancy.resolution": (8, 256),
    "renderer.occupancy.update_every": (1, MAX_STEPS),
    "renderer.chunk_rays": (256, 1 << 17),
    "renderer.shading_start_step": (0, MAX_STEPS),
    "export.resolution": (16, 512),
    "export.chunk": (1024, 1 << 20),
    "export.smooth_iterations": (0, 100),
    "export.close_voxels": (0, 8),
    "export.target_faces": (0, 500_000),
    "export.texture_size": (64, 4096),
    "export.uv_padding": (1, 128),
    "export.turntable_views": (0, 32),
    "export.turntable_size": (16, 1024),
}
"""Server bounds [low, high] on the resolved config (the engine's own validation still applies)."""

GENERIC_INT = (-1_000_000, 1_000_000)
"""Bounds for integer options not listed in LIMITS."""
GENERIC_FLOAT = 1e9
"""Bound on the magnitude of float options."""


def check_text(value: str, what: str) -> str:
    """Printable text only: no control characters or lone surrogates (they break tokenizers and logs)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t":
            raise ValueError(f"{what} contains a control character ({ch!r}); send printable text")
    return value


def leaf_type(path: str, method: str) -> Any:
    """The annotation of the config field a dotted path names (the guidance group is the method's)."""
    if path in FORBIDDEN:
        raise ValueError(f"option {path!r} cannot be set: {FORBIDDEN[path]}")
    cls: Any = RunConfig
    for i, name in enumerate(path.split(".")):
        names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        if name not in names:
            raise ValueError(f"unknown option {path!r}" + (" for method " + method if i > 0 else ""))
        cls = METHODS[method] if cls is RunConfig and name == "guidance" else typing.get_type_hints(cls)[name]
    if dataclasses.is_dataclass(cls) or _is_config_union(cls):
        raise ValueError(f"option {path!r} is a group of settings: set its fields one by one ({path}.<name>)")
    return cls


def _is_config_union(tp: Any) -> bool:
    args = typing.get_args(tp)
    return bool(args) and all(dataclasses.is_dataclass(a) for a in args)


def coerce(path: str, value: Any, tp: Any) -> Any:
    """``value`` as the type ``tp`` wants (JSON lists become tuples), or ValueError naming the path."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(path, value, a)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"option {path!r}: unsupported value {value!r}")
    if origin is Literal:
        if value not in args or type(value) is not type(args[args.index(value)]):
            raise ValueError(f"option {path!r} must be one of {', '.join(map(repr, args))} (got {value!r})")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"option {path!r} needs a list of {len(args)} values (got {value!r})")
        return tuple(coerce(path, v, a) for v, a in zip(value, args))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"option {path!r} must be true or false (got {value!r})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"option {path!r} must be an integer (got {value!r})")
        lo, hi = LIMITS.get(path, GENERIC_INT)
        if not lo <= value <= hi:
            raise ValueError(f"option {path!r} must be between {lo:g} and {hi:g} (got {value})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"option {path!r} must be a number (got {value!r})")
        if not math.isfinite(value) or abs(value) > GENERIC_FLOAT:
            raise ValueError(f"option {path!r} must be a finite number of magnitude <= {GENERIC_FLOAT:g}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"option {path!r} must be a string (got {value!r})")
        if len(value) > MAX_OPTION_STRING:
            raise ValueError(f"option {path!r} is longer than {MAX_OPTION_STRING} characters")
        return check_text(value, f"option {path!r}")
    raise ValueError(f"option {path!r} cannot be set over HTTP")


def get_path(cfg: Any, path: str) -> Any:
    obj = cfg
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def check_limits(cfg: RunConfig) -> None:
    """Raise ValueError if the resolved config exceeds a server limit."""
    for path, (lo, hi) in LIMITS.items():
        try:
            value = get_path(cfg, path)
        except AttributeError:
            continue
        if not lo <= value <= hi:
            raise ValueError(f"{path} = {value} is outside this server's limits [{lo:g}, {hi:g}]")
