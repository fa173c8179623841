"""Diffusion priors: the ``DiffusionPrior`` interface, a pixel-space prior, Stable Diffusion (any latent
prior in its layout), and the priors shipped with the engine (:data:`SHIPPED_PRIORS`).

A prior is chosen by a typed config (``PixelPriorConfig | StableDiffusionConfig``); what a user types
after ``--prior`` becomes one through :func:`resolve_prior_spec`. Importing this package is cheap:
diffusers and transformers are imported only when a prior is loaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.priors.base import DiffusionPrior
from engine.priors.identity import is_folder
from engine.priors.pixel import PixelDiffusionPrior, PixelPriorConfig
from engine.priors.stable_diffusion import DEFAULT_SD_MODEL, StableDiffusionConfig, StableDiffusionPrior

__all__ = [
    "BUILTIN_PRIOR_DIR",
    "DEFAULT_SD_MODEL",
    "DiffusionPrior",
    "PixelDiffusionPrior",
    "PixelPriorConfig",
    "PRIOR_SPEC_FORMS",
    "PriorConfig",
    "SHIPPED_PRIORS",
    "ShippedPrior",
    "StableDiffusionConfig",
    "StableDiffusionPrior",
    "load_prior",
    "resolve_prior_spec",
]

PriorConfig = PixelPriorConfig | StableDiffusionConfig


@dataclass(frozen=True)
class ShippedPrior:
    """A prior trained by this repository's own scripts and shipped inside the package (weights in
    diffusers layout, a model card, and the LMC-SDS corrective in ``corrective/``)."""

    name: str
    """What ``--prior`` takes."""
    folder: Path
    summary: str
    """One line for ``--help``, ``/v1/health`` and the add-on."""


_HERE = Path(__file__).resolve().parent
SHIPPED_PRIORS: dict[str, ShippedPrior] = {
    p.name: p
    for p in (
        ShippedPrior(
            "builtin",
            _HERE / "builtin",
            "the default: a 64 px latent prior of the procedural world, in Stable Diffusion's layout, for the CPU",
        ),
        ShippedPrior(
            "builtin-pixel32",
            _HERE / "builtin_pixel32",
            "the earlier 32 px pixel-space prior of the same world: faster, too small to draw fronts",
        ),
    )
}
"""The priors that ship with the engine, by name; ``builtin`` is the default everywhere."""

BUILTIN_PRIOR_DIR = SHIPPED_PRIORS["builtin"].folder
"""Where the default built-in prior's weights and model card ship inside the package."""

PRIOR_SPEC_FORMS = (
    *(f"{p.name} ({p.summary})" for p in SHIPPED_PRIORS.values()),
    "PATH (a local diffusers folder: with vae/ it is Stable Diffusion, with only unet/ a pixel prior)",
    "pixel:PATH",
    f"sd or sd-2.1 ({DEFAULT_SD_MODEL})",
    "sd:HUB_ID_OR_PATH",
    "OWNER/NAME (a model hub id, loaded as Stable Diffusion)",
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_prior_spec(spec: str) -> PriorConfig:
    """Turn a ``--prior`` value into a prior config; ``ValueError`` listing accepted forms otherwise.

    Only local folders are inspected here; hub ids are checked when the prior is loaded.
    """
    text = spec.strip()
    if text in SHIPPED_PRIORS:
        folder = SHIPPED_PRIORS[text].folder
        if not (folder / "unet").is_dir():
            raise ValueError(
                f"the shipped prior {text!r} is not installed ({folder} has no unet/): pass --prior PATH to a "
                "diffusers prior folder, or a Stable Diffusion model"
            )
        return _folder_prior(folder, spec)
    if text.lower() in ("sd", "sd-2.1"):
        return StableDiffusionConfig()
    if text.startswith("sd:"):
        model = text[3:].strip()
        if not model:
            raise ValueError(
                "--prior sd: needs a hub id or a folder after the colon, e.g. sd:" + DEFAULT_SD_MODEL
            )
        if is_folder(model):
            model = str(Path(model).expanduser())
        return StableDiffusionConfig(model=model)
    if text.startswith("pixel:"):
        folder = Path(text[6:].strip()).expanduser()
        if not is_folder(folder / "unet"):
            raise ValueError(
                f"--prior {spec}: {str(folder)!r} is not a diffusers pixel prior folder (no unet/)"
            )
        return PixelPriorConfig(path=str(folder))

    folder = Path(text).expanduser()
    if text and is_folder(folder):
        return _folder_prior(folder, spec)
    if _HUB_ID.match(text):
        return StableDiffusionConfig(model=text)
    if text.startswith(("/", ".", "~")) or "\\" in text:
        raise ValueError(f"--prior {spec}: no such folder {str(folder)!r}")
    raise ValueError(f"--prior {spec!r} is not understood; use one of: " + "; ".join(PRIOR_SPEC_FORMS))


def _folder_prior(folder: Path, spec: str) -> PriorConfig:
    """A local diffusers folder: with vae/ it is a latent (Stable Diffusion layout) prior, else a pixel one."""
    if is_folder(folder / "vae"):
        return StableDiffusionConfig(model=str(folder))
    if is_folder(folder / "unet"):
        return PixelPriorConfig(path=str(folder))
    raise ValueError(
        f"--prior {spec}: the folder {str(folder)!r} is not a diffusers prior: it has no unet/ "
        "(a pixel prior needs unet/, text_encoder/, tokenizer/, scheduler/; Stable Diffusion also vae/)"
    )


def load_prior(cfg: PriorConfig, device: torch.device | str = "auto") -> DiffusionPrior:
    """Build the prior a config describes on ``device`` (a ``torch.device`` or a preference string).

    Loading local weights is quick; the libraries' per-file progress bars would only clutter the CLI's
    output and the server's log, so they are switched off here.
    """
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    return cfg.setup(device)
