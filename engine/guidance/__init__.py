"""Guidance methods, one file each; ``METHODS`` maps the user-facing name to its config class."""

from __future__ import annotations

from engine.guidance.base import Guidance, GuidanceOutput, PromptEmbeddings, TimestepConfig
from engine.guidance.esd import ESDConfig, ESDGuidance, VSDConfig
from engine.guidance.lmc import LMCSDSConfig, LMCSDSGuidance
from engine.guidance.sds import SDSConfig, SDSGuidance

GuidanceConfig = SDSConfig | ESDConfig | LMCSDSConfig
"""Union of every method's config (grows as methods are added)."""

METHODS: dict[str, type[GuidanceConfig]] = {
    "sds": SDSConfig,
    "lmc-sds": LMCSDSConfig,
    "esd": ESDConfig,
    "vsd": VSDConfig,  # ESD with λ = 0: a preset, the same implementation
}
"""Method name (CLI ``--method``, server ``method``) → its config class with that method's defaults."""


def method_config(name: str) -> GuidanceConfig:
    """Default config of a method by name; a clear error for unknown names."""
    try:
        return METHODS[name]()
    except KeyError:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}") from None


__all__ = [
    "METHODS",
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
    "method_config",
]
