"""Diffusion priors: the ``DiffusionPrior`` interface, a pixel-space prior and Stable Diffusion.

A prior is chosen by a typed config (``PixelPriorConfig | StableDiffusionConfig``); what a user types
after ``--prior`` becomes one through :func:`resolve_prior_spec`. Importing this package is cheap:
diffusers and transformers are imported only when a prior is loaded.
"""

from __future__ import annotations

import re
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
    "PriorConfig",
    "StableDiffusionConfig",
    "StableDiffusionPrior",
    "load_prior",
    "resolve_prior_spec",
]

PriorConfig = PixelPriorConfig | StableDiffusionConfig

BUILTIN_PRIOR_DIR = Path(__file__).resolve().parent / "builtin"
"""Where the built-in pixel prior's weights (diffusers layout) and model card ship inside the package."""

PRIOR_SPEC_FORMS = (
    "builtin (the CPU prior shipped with the engine)",
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
    if text == "builtin":
        if not (BUILTIN_PRIOR_DIR / "unet").is_dir():
            raise ValueError(
                "the built-in prior is not installed yet: pass --prior PATH to a diffusers pixel prior "
                "folder, or a Stable Diffusion model"
            )
        return PixelPriorConfig(path=str(BUILTIN_PRIOR_DIR))
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
        if is_folder(folder / "vae"):
            return StableDiffusionConfig(model=str(folder))
        if is_folder(folder / "unet"):
            return PixelPriorConfig(path=str(folder))
        raise ValueError(
            f"--prior {spec}: the folder {str(folder)!r} is not a diffusers prior: it has no unet/ "
            "(a pixel prior needs unet/, text_encoder/, tokenizer/, scheduler/; Stable Diffusion also vae/)"
        )
    if _HUB_ID.match(text):
        return StableDiffusionConfig(model=text)
    if text.startswith(("/", ".", "~")) or "\\" in text:
        raise ValueError(f"--prior {spec}: no such folder {str(folder)!r}")
    raise ValueError(f"--prior {spec!r} is not understood; use one of: " + "; ".join(PRIOR_SPEC_FORMS))


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
