"""Guidance methods, one file each, found by importing every module of this package.

A module that defines a :class:`GuidanceConfig` subclass with a ``name`` registers that method
(``engine.guidance.base.REGISTRY``); :data:`METHODS` is the registry in display order. Nothing else
lists methods: the CLI, the server's schema, ``/v1/health``, the add-on's menu and the bench read it.
"""

from __future__ import annotations

import importlib
import pkgutil

from engine.guidance.base import (
    REGISTRY,
    Guidance,
    GuidanceConfig,
    GuidanceOutput,
    PromptEmbeddings,
    TimestepConfig,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from engine.guidance.esd import ESDConfig, ESDGuidance, VSDConfig  # noqa: E402
from engine.guidance.lmc import LMCSDSConfig, LMCSDSGuidance  # noqa: E402
from engine.guidance.sds import SDSConfig, SDSGuidance  # noqa: E402

METHODS: dict[str, type[GuidanceConfig]] = {cls.name: cls for cls in GuidanceConfig.variants()}
"""Method name (CLI ``--method``, server ``method``) → its config class with that method's defaults."""


def method_config(name: str) -> GuidanceConfig:
    """Default config of a method by name; a clear error for unknown names."""
    try:
        return METHODS[name]()
    except KeyError:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}") from None


def method_catalog() -> list[dict[str, str]]:
    """Each method's name, label and one-line summary, in display order (``/v1/health``, menus)."""
    return [{"name": c.name, "label": c.label, "summary": c.summary} for c in METHODS.values()]


__all__ = [
    "METHODS",
    "REGISTRY",
    "ESDConfig",
    "ESDGuidance",
    "Guidance",
    "GuidanceConfig",
    "GuidanceOutput",
    "LMCSDSConfig",
    "LMCSDSGuidance",
    "PromptEmbeddings",
    "SDSConfig",
    "SDSGuidance",
    "TimestepConfig",
    "VSDConfig",
    "method_catalog",
    "method_config",
]
