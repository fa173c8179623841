"""Dotted-path run options sent by clients (``{"renderer.n_samples": 48}``): strict JSON parsing.

``engine.config.build_config`` sets overrides without looking at their types, so a client's value is
checked here against the annotation of the config field it targets first (a string where an int
belongs would otherwise fail deep inside the trainer). The schema is the configs' own
(:func:`engine.configbase.leaves`); the bounds are their fields' metadata: what the engine can run with
(``RunConfig.validate``) and what this server accepts for cost (``serve=`` limits, checked on the
*resolved* config by :func:`check_limits`, so presets and options are held to the same bounds).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
import unicodedata
from typing import Any, Literal

from engine.config import RunConfig, TrainConfig
from engine.configbase import check_bounds, leaves
from engine.guidance import method_config


def _serve_max(cls: type, name: str) -> int:
    (f,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return int(f.metadata["serve"].le)


MAX_STEPS = _serve_max(TrainConfig, "steps")
"""Most optimisation steps per variant a server accepts (``TrainConfig.steps``'s limit)."""
MAX_SEED = _serve_max(TrainConfig, "seed")
MAX_OPTION_STRING = 1024
"""Longest string value of an option (prior folders, corrective model paths)."""

SERVER_DEFAULTS: dict[str, Any] = {"train.preview_every": 25, "train.preview_seconds": 1.5}
"""Defaults of the server that differ from the terminal's (the request's options override them): a
preview after the first step and then every ~1.5 s (and every 25 steps) gives a live view of the object
forming, at the cost of one small render per preview; the event writer's rate limit still applies."""

FORBIDDEN: dict[str, str] = {
    "train.device": "the server assigns each job to one of its worker devices (see /v1/health)",
    "prompt": "give it as the request's prompt",
    "method": "give it as the request's method",
    "prior": "give it as the request's prior",
    "preset": "give it as the request's preset",
}

GENERIC_INT = (-1_000_000, 1_000_000)
"""Bounds on the magnitude of any integer option (each setting's own bounds apply on top)."""
GENERIC_FLOAT = 1e9
"""Bound on the magnitude of float options."""


def check_text(value: str, what: str) -> str:
    """Printable text only: no control characters or lone surrogates (they break tokenizers and logs)."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\t":
            raise ValueError(f"{what} contains a control character ({ch!r}); send printable text")
    return value


def leaf_type(path: str, method: str) -> Any:
    """The annotation of the setting a dotted path names, for the given method's run config."""
    if path in FORBIDDEN:
        raise ValueError(f"option {path!r} cannot be set: {FORBIDDEN[path]}")
    schema = _schema(method)
    if path in schema:
        return schema[path]
    if any(p.startswith(path + ".") for p in schema):
        raise ValueError(f"option {path!r} is a group of settings: set its fields one by one ({path}.<name>)")
    raise ValueError(f"unknown option {path!r}" + (f" for method {method}" if "." in path else ""))


@functools.cache
def _schema(method: str) -> dict[str, Any]:
    """Dotted path → annotation of every setting of a run with ``method``."""
    return {leaf.path: leaf.type for leaf in leaves(RunConfig(guidance=method_config(method)))}


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
        lo, hi = GENERIC_INT
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


def check_limits(cfg: RunConfig) -> None:
    """Raise ValueError naming the first setting of the resolved config beyond this server's limits."""
    check_bounds(cfg, kind="serve")
