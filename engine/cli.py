"""Command-line flags generated from the typed configs (help text = the field docstrings).

Every leaf of :class:`engine.config.RunConfig` becomes a dotted flag (``--train.steps``,
``--renderer.occupancy.resolution`` …); the most used ones also get a short alias. Flags left unset do
not override presets. Argument errors print one line, not a usage dump.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from typing import Any, Literal, NoReturn

from engine.configbase import get_path, leaves

# Short aliases for the settings people change most.
ALIASES = {
    "train.steps": "--steps",
    "train.seed": "--seed",
    "train.device": "--device",
    "train.render_size": "--render-size",
    "train.batch_size": "--batch-size",
    "guidance.guidance_scale": "--guidance-scale",
    "export.resolution": "--mesh-resolution",
}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are a single line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def _parse_bool(s: str) -> bool:
    v = s.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {s!r}")


def _converter(tp: Any) -> tuple[Any, list[str] | None, str]:
    """(parse function, choices, metavar) for a field annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        conv, choices, metavar = _converter(inner)

        def optional(s: str) -> Any:
            return None if s.strip().lower() == "none" else conv(s)

        return optional, None if choices is None else [*choices, "none"], metavar
    if origin is Literal:
        return str, [str(a) for a in args], "{" + ",".join(str(a) for a in args) + "}"
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        elem_conv = _converter(args[0])[0]
        seq = list if origin is list else tuple

        def many(s: str) -> Any:
            # Spaces around the commas go; spaces inside an element stay ("a red cube,a snowman").
            return seq(elem_conv(p.strip()) for p in s.split(",") if p.strip())

        many.__name__ = (
            f"comma-separated {getattr(args[0], '__name__', 'value')}"  # argparse's error names it
        )
        return many, None, "A,B,…"
    if origin is tuple:
        elem = args[0]

        def tup(s: str) -> tuple:
            parts = [p.strip() for p in s.split(",") if p.strip()]
            if len(parts) != len(args):
                raise argparse.ArgumentTypeError(f"expected {len(args)} comma-separated values, got {s!r}")
            return tuple(elem(p) for p in parts)

        return tup, None, ",".join(["X"] * len(args))
    if tp is bool:
        return _parse_bool, None, "{true,false}"
    if tp in (int, float, str):
        return tp, None, tp.__name__.upper()
    raise TypeError(f"no CLI conversion for {tp!r}")


def method_default_notes(prefix: str) -> dict[str, str]:
    """For guidance fields whose default depends on the method: ``path → "sds: 100, lmc-sds: 10 …"``."""
    from engine.guidance import METHODS

    per: dict[str, dict[str, Any]] = {}
    for name, cls in METHODS.items():
        instance = cls()
        for leaf in leaves(instance):
            per.setdefault(prefix + leaf.path, {})[name] = get_path(instance, leaf.path)
    notes = {}
    for path, by in per.items():
        if len(by) > 1 and len({repr(v) for v in by.values()}) > 1:
            shown = ", ".join(f"{m}: {_shown(v)}" for m, v in by.items())
            notes[path] = f"Default by method: {shown}."
    return notes


def _shown(value: Any) -> str:
    """A default as it is typed on the command line."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(_shown, value))
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    return '""' if value == "" else str(value)


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: set[str] = frozenset(),
    notes: dict[str, str] | None = None,
    defaults: Any = None,
) -> list[str]:
    """Add one flag per leaf setting of dataclass ``cls`` (:func:`engine.configbase.leaves`: the guidance
    group lists every method's settings, with each method's default where they differ); returns the
    dotted paths added. ``notes`` are appended to the help of the paths they name; with ``defaults`` (an
    instance of ``cls``) the help shows each field's default too (not for run configs, whose defaults
    come from presets). A setting the chosen method lacks is refused when it is set."""
    notes = dict(notes or {})
    groups: dict[str, argparse._ArgumentGroup] = {}
    paths: list[str] = []
    for leaf in leaves(cls):
        path = leaf.path
        if path in skip or any(path.startswith(s + ".") for s in skip):
            continue
        top = path.split(".")[0] if "." in path else None
        if top is not None and top not in groups:
            groups[top] = parser.add_argument_group(top)
            if holds_variants(cls, top):
                notes.update({k: v for k, v in method_default_notes(top + ".").items() if k not in notes})
        group = groups[top] if top is not None else parser
        conv, choices, metavar = _converter(leaf.type)
        names = [f"--{path.replace('_', '-')}"]
        if path in ALIASES:
            names.insert(0, ALIASES[path])
        bounds = leaf.bounds
        group.add_argument(
            *names,
            dest=path,
            type=conv,
            choices=choices,
            metavar=metavar,
            default=argparse.SUPPRESS,
            # argparse formats help with %
            help=" ".join(
                filter(
                    None,
                    [
                        leaf.doc,
                        None if bounds is None else f"Must be {bounds.rule()}.",
                        None
                        if leaf.serve is None
                        else f"A server accepts {leaf.serve.ge:g} to {leaf.serve.le:g}.",
                        notes.get(path, ""),
                        None if defaults is None else f"(default: {_shown(get_path(defaults, path))})",
                    ],
                )
            ).replace("%", "%%"),
        )
        paths.append(path)
    return paths


def holds_variants(cls: type, name: str) -> bool:
    """Whether field ``name`` of ``cls`` holds one of several config classes (the guidance methods)."""
    tp = typing.get_type_hints(cls).get(name)
    return isinstance(tp, type) and hasattr(tp, "variants")


def overrides_from(ns: argparse.Namespace, paths: list[str]) -> dict[str, Any]:
    """The dotted settings the user actually gave."""
    return {p: getattr(ns, p) for p in paths if hasattr(ns, p)}


def apply_overrides(cfg: Any, ns: argparse.Namespace, paths: list[str]) -> Any:
    """Set the dotted settings the user gave on the dataclass instance ``cfg`` (in place); returns it."""
    from engine.config import set_path

    for path, value in overrides_from(ns, paths).items():
        set_path(cfg, path, value)
    return cfg


def parse_config(
    parser: argparse.ArgumentParser, cls: type, argv: list[str] | None
) -> tuple[Any, argparse.Namespace]:
    """For a script configured by dataclass ``cls`` (with a ``quick()`` preset and a ``validate()``): add
    ``--quick`` and one flag per field (help shows the defaults), parse ``argv``, and return the config —
    ``cls.quick()`` with ``--quick``, else ``cls()``, then the flags given — and the parsed arguments. A
    setting ``validate()`` refuses exits with the parser's one-line error."""
    parser.add_argument(
        "--quick", action="store_true", help=f"tiny settings ({cls.__name__}.quick); flags still apply"
    )
    paths = add_config_flags(parser, cls, defaults=cls())
    args = parser.parse_args(argv)
    cfg = apply_overrides(cls.quick() if args.quick else cls(), args, paths)
    try:
        cfg.validate()
    except ValueError as e:
        parser.error(str(e))
    return cfg, args
