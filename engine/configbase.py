"""Helpers shared by every typed config: attribute docstrings and dotted overrides.

Config classes are plain dataclasses with a docstring string literal under each field (as nerfstudio
does). Python drops those strings at run time, so :func:`field_docs` reads them back from the source;
the CLI uses them for ``--help`` and the server for its schema descriptions.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
import typing
from typing import Any


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Map field name → the docstring written under it in ``cls`` (and its dataclass bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(src).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def to_dict(cfg: Any) -> Any:
    """JSON-ready nested dict of a config (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a (nested) config from :func:`to_dict` output; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} setting(s): {', '.join(sorted(unknown))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, tp = data[f.name], hints[f.name]
        if dataclasses.is_dataclass(tp):
            value = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


# ------------------------------------------------------------------------------------ bounds and limits


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Valid values of a numeric setting; ``None`` (for optional settings) is always allowed."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def rule(self) -> str:
        """The bounds in words, e.g. ``in [0, 1]``, ``> 0``."""
        lo = None if self.ge is None and self.gt is None else ("[" if self.gt is None else "(")
        hi = None if self.le is None and self.lt is None else ("]" if self.lt is None else ")")
        a = self.ge if self.gt is None else self.gt
        b = self.le if self.lt is None else self.lt
        if lo and hi:
            return f"in {lo}{a:g}, {b:g}{hi}"
        if lo:
            return f">= {a:g}" if lo == "[" else f"> {a:g}"
        if hi:
            return f"<= {b:g}" if hi == "]" else f"< {b:g}"
        return "any value"

    def holds(self, value: Any) -> bool:
        if value is None:
            return True
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    serve: tuple[float, float] | None = None,
) -> Any:
    """A dataclass field with its bounds beside it.

    ``ge``/``gt``/``le``/``lt`` are what the engine can run with (every ``validate()`` checks them, on the
    command line and at the server's door alike); ``serve`` is the range a server accepts because of what
    a value costs in memory or time (a terminal user may go beyond it). For a tuple setting the bounds
    apply to each element.
    """
    metadata: dict[str, Any] = {}
    if any(v is not None for v in (ge, gt, le, lt)):
        metadata["bounds"] = Bounds(ge, gt, le, lt)
    if serve is not None:
        metadata["serve"] = Bounds(ge=serve[0], le=serve[1])
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One setting of a config tree, as :func:`leaves` finds it."""

    path: str
    """Dotted path from the root, e.g. ``guidance.timesteps.t_min``."""
    type: Any
    """The field's annotation (resolved)."""
    doc: str
    """The docstring written under the field."""
    field: dataclasses.Field
    owner: type
    """The config class that declares the field."""

    @property
    def bounds(self) -> Bounds | None:
        return self.field.metadata.get("bounds")

    @property
    def serve(self) -> Bounds | None:
        return self.field.metadata.get("serve")


def leaves(root: Any, prefix: str = "") -> list[Leaf]:
    """Every leaf setting of a dataclass config tree, depth first in field order.

    ``root`` is a class or an instance. For an instance, nested configs are walked by the type of the
    value they hold (a run config's guidance group is its method's class); for a class, by annotation,
    and an annotation whose class offers ``variants()`` (the guidance base: every registered method) is
    walked over all of them, each path once (the first class that has it).
    """
    cls = root if isinstance(root, type) else type(root)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out: list[Leaf] = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        path = prefix + f.name
        if not isinstance(root, type) and dataclasses.is_dataclass(getattr(root, f.name)):
            out += leaves(getattr(root, f.name), path + ".")
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if hasattr(tp, "variants"):
                seen = set()
                for variant in tp.variants():
                    for leaf in leaves(variant, path + "."):
                        if leaf.path not in seen:
                            seen.add(leaf.path)
                            out.append(leaf)
            else:
                out += leaves(tp, path + ".")
        else:
            out.append(Leaf(path, tp, docs.get(f.name, ""), f, cls))
    return out


def get_path(cfg: Any, path: str) -> Any:
    """The value at a dotted path of a config instance."""
    obj = cfg
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def check_bounds(cfg: Any, prefix: str = "", kind: str = "bounds") -> None:
    """ValueError naming the first setting of the tree ``cfg`` outside its bounds (``kind="serve"``: its
    server limits)."""
    for leaf in leaves(cfg, prefix):
        b: Bounds | None = leaf.field.metadata.get(kind)
        if kind == "bounds" and typing.get_origin(leaf.type) is typing.Literal:
            value = get_path(cfg, leaf.path[len(prefix) :])
            if value not in typing.get_args(leaf.type):
                choices = ", ".join(map(str, typing.get_args(leaf.type)))
                raise ValueError(f"{leaf.path} must be one of {choices} (got {value!r})")
        if b is None:
            continue
        value = get_path(cfg, leaf.path[len(prefix) :])
        values = value if isinstance(value, (tuple, list)) else (value,)
        for v in values:
            if isinstance(v, bool) or not (v is None or isinstance(v, (int, float))):
                raise ValueError(f"{leaf.path} must be a number (got {value!r})")
            if not b.holds(v):
                if kind == "serve":
                    raise ValueError(
                        f"{leaf.path} = {value!r} is outside this server's limits [{b.ge:g}, {b.le:g}]"
                    )
                raise ValueError(f"{leaf.path} must be {b.rule()} (got {value!r})")


def validate_tree(cfg: Any, prefix: str = "") -> None:
    """Check a whole config tree: every field's bounds, then each config's own ``check()`` (rules that
    span fields), deepest first. Errors name the dotted path of the setting."""
    check_bounds(cfg, prefix)
    _checks(cfg, prefix)


def _checks(cfg: Any, prefix: str) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            _checks(value, f"{prefix}{f.name}.")
    check = getattr(cfg, "check", None)
    if check is None:
        return
    try:
        check()
    except ValueError as e:
        msg = str(e)
        # A rule's message starts with the field it names ("lam must …"): prefix the group's path to it.
        names = {f.name for f in dataclasses.fields(cfg)}
        first = msg.split(" ", 1)[0].rstrip(":,")
        if not prefix or msg.startswith(prefix):
            raise
        raise ValueError(f"{prefix}{msg}" if first in names else f"{prefix.rstrip('.')}: {msg}") from None


class Config:
    """Base of the typed configs: ``validate()`` checks the bounds declared with :func:`setting` and
    the config's own ``check()``; subclasses put rules that span several fields in ``check()``."""

    def validate(self) -> None:
        """Raise ValueError naming the first setting this config cannot run with."""
        validate_tree(self)

    def check(self) -> None:  # noqa: B027 (a deliberate no-op default)
        """Rules that span fields; raise ValueError starting with the field's name."""
