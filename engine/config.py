"""The typed configuration of a generation run, and its named presets.

One :class:`RunConfig` travels the whole path (CLI or server request → trainer → export), so a value
such as the seed or the guidance scale is parsed exactly once. Presets are named functions that edit a
config; the order is: defaults → method defaults → preset → explicit user settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.cameras import CameraConfig
from engine.configbase import Config, from_dict, setting, to_dict
from engine.export import MeshExportConfig
from engine.fields.nerf import FieldConfig
from engine.guidance import METHODS, GuidanceConfig, method_config
from engine.priors import SHIPPED_PRIORS, resolve_prior_spec
from engine.priors.identity import PriorIdentity, weights_fingerprint
from engine.regularizers import RegularizerConfig
from engine.render.renderer import RendererConfig

MAX_PROMPT_CHARS = 500
MAX_SERVED_STEPS = 20000
"""Most optimisation steps (and step counts such as checkpoint intervals) a server accepts per variant."""


@dataclass
class TrainConfig(Config):
    """The optimisation loop."""

    steps: int = setting(600, ge=1, serve=(1, MAX_SERVED_STEPS))
    """Optimisation steps."""
    batch_size: int = setting(1, ge=1, serve=(1, 8))
    """Camera views rendered per step."""
    render_size: int = setting(64, ge=1, serve=(8, 512))
    """Side of the rendered training images in pixels (the prior resizes to its native size)."""
    seed: int = setting(0, serve=(0, 2**31 - 1))
    """Seeds every random draw (cameras, noise, timesteps, init): same seed + config → same asset on CPU."""
    lr_grid: float = setting(1e-2, gt=0.0)
    """Adam learning rate of the hash-grid tables."""
    lr_mlp: float = setting(1e-3, gt=0.0)
    """Adam learning rate of the MLP heads."""
    lr_background: float = setting(1e-2, gt=0.0)
    """Adam learning rate of a learned background colour."""
    checkpoint_every: int = setting(100, ge=0, serve=(0, MAX_SERVED_STEPS))
    """Save a resumable checkpoint every N steps (0: only at the end and on cancel)."""
    preview_every: int = setting(50, ge=0, serve=(0, MAX_SERVED_STEPS))
    """Emit a preview image every N steps (0: never)."""
    preview_seconds: float = setting(0.0, ge=0.0, serve=(0.0, 3600.0))
    """Also emit a preview whenever this many seconds have passed since the last one, and one after the
    first step (0: by steps only). Steps take from milliseconds on a GPU to seconds on a CPU, so a live
    view is paced by time."""
    preview_size: int = setting(64, ge=1, serve=(8, 256))
    """Side of preview images in pixels."""
    device: str = "auto"
    """auto (CUDA if available, else CPU), cpu, cuda, cuda:N."""


@dataclass
class RunConfig(Config):
    """Everything that determines one generated asset. The guidance method is the type of ``guidance``
    (:attr:`method` is its name); serialised, the name travels as ``"method"``."""

    prompt: str = ""
    """What to generate, e.g. "a red cube"."""
    prior: str = "builtin"
    """builtin, a local diffusers folder (pixel or Stable Diffusion), sd, sd:<hub id or folder>, or a hub id."""
    preset: str = "fast"
    """Named preset applied over the method defaults (see PRESETS)."""
    guidance: GuidanceConfig = dataclasses.field(default_factory=lambda: method_config("sds"))
    """The guidance method and its settings (its class is the method)."""
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    """Neural field."""
    renderer: RendererConfig = dataclasses.field(default_factory=RendererConfig)
    """Volume renderer."""
    cameras: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """Training camera distribution and view-dependent prompts."""
    regularizers: RegularizerConfig = dataclasses.field(default_factory=RegularizerConfig)
    """Geometry regularisers added to the guidance loss (normal smoothness, orientation, opacity entropy)."""
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    """Optimisation loop."""
    export: MeshExportConfig = dataclasses.field(default_factory=MeshExportConfig)
    """Mesh export."""

    @property
    def method(self) -> str:
        """Name of the guidance method (the registered name of ``guidance``'s class)."""
        return self.guidance.name

    def check(self) -> None:
        """What a run cannot start with beyond each setting's bounds (those :meth:`validate` checks too)."""
        if not self.prompt or not self.prompt.strip():
            raise ValueError('the prompt is empty: say what to generate, e.g. "a red cube"')
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"the prompt has {len(self.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        if type(self.guidance) is not METHODS.get(self.guidance.name):
            raise ValueError(f"guidance: {type(self.guidance).__name__} is not a registered guidance method")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if self.regularizers.eikonal > 0 and self.field.density != "sdf":
            raise ValueError(
                "regularizers.eikonal needs a signed-distance field: add --field.density sdf, "
                "or set --regularizers.eikonal 0"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the method's name comes right after the prompt, as ``"method"``."""
        data = to_dict(self)
        return {"prompt": data.pop("prompt"), "method": self.method, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Inverse of :meth:`to_dict`: ``"method"`` picks the class its ``"guidance"`` settings fill."""
        data = dict(data)
        guidance = method_config(data.pop("method", "sds"))
        settings = data.pop("guidance", None)
        cfg = from_dict(cls, data)
        cfg.guidance = guidance if settings is None else from_dict(type(guidance), settings)
        return cfg


def _fast(cfg: RunConfig) -> None:
    """Fewer steps at low resolution: minutes per asset on a CPU."""
    cfg.train.steps = 600
    cfg.train.render_size = 64


def _quality(cfg: RunConfig) -> None:
    """More steps, larger renders and a finer mesh: best on a GPU."""
    cfg.train.steps = 2500
    cfg.train.render_size = 96
    cfg.renderer.n_samples = 96
    cfg.export.resolution = 256


PRESETS: dict[str, Callable[[RunConfig], None]] = {"fast": _fast, "quality": _quality}
"""Named presets; each edits a config in place (its docstring is the summary menus show)."""


def preset_catalog() -> list[dict[str, str]]:
    """Each preset's name, label and one-line summary (``/v1/health``, menus)."""
    return [
        {"name": name, "label": name.capitalize(), "summary": " ".join((fn.__doc__ or "").split())}
        for name, fn in PRESETS.items()
    ]


def _world_prior(cfg: RunConfig) -> None:
    """Settings every prior of the procedural world needs (its model cards have the numbers).

    Its training images are always shaded by a key light fixed in camera space (upper front-left,
    35% ambient), so renders are shaded the same way: an unshaded or randomly lit object is outside the
    prior's world, and with the world's lighting the flat faces of a cube read as a cube.
    """
    cfg.renderer.light = "camera_key"
    cfg.renderer.ambient = 0.35
    cfg.renderer.light_jitter = 0.3
    cfg.renderer.lambertian_prob = 1.0
    cfg.renderer.textureless_prob = 0.2
    cfg.renderer.shading_start_step = 100
    # Shading needs smooth normals: a coarser finest grid level and a wider finite-difference step (a 32 or 64 px
    # prior cannot use detail finer than ~1/256 of the box anyway); measured: far less speckle.
    cfg.renderer.normal_eps = 0.04
    cfg.field.grid.max_resolution = 256
    cfg.field.grid.n_levels = 12
    if cfg.method == "sds":  # a setting of one method: keyed on its registered name
        # DreamFusion's ω=100 is meant for Stable Diffusion; on the 32 px prior ω=10 gave the cleaner
        # asset (red cube judged right in 8/8 views vs 7/8 at ω=100, fewer floaters; its model card).
        cfg.guidance.guidance_scale = 10.0


LATENT_GRADIENT_RATIO = 5.0
"""How much more the regularisers weigh with the 64 px latent prior than with the 32 px pixel prior they were
measured on. Its SDS gradient per render pixel is ~14× the pixel prior's (it arrives through the VAE
encoder instead of a 2× downsampling; ``python scripts/measure_guidance_gradient.py``,
results/guidance_gradient.json), so the pixel prior's weights left the latent prior's red cube with
tentacles and a hole (fast preset, seed 0: normal consistency 0.73, genus 1). Scaled ×5 it had none
(NC 0.84, genus 0); ×15, the full ratio, smoothed it into a blob (NC 0.83, Chamfer 3.5 % vs 3.1 %). The
green cone, seed 0: ×1 NC 0.62, genus 12, judged right in 1/8 views; ×5 NC 0.88, Chamfer 1.48 %, genus 0, 8/8.
Not for LMC-SDS, whose guidance is scaled by 1/ω (:data:`LATENT_RATIO_EXEMPT`)."""

LATENT_RATIO_EXEMPT = ("lmc-sds",)
"""Methods that keep the pixel prior's regulariser weights with the latent prior. LMC-SDS's guidance is
scaled by 1/ω, so ×5 made its red cube an over-smoothed blob, judged a cube in 0/8 views; at ×1 it is
judged right in 7/8 (Chamfer 3.91 % vs 3.94 %, NC 0.800 both), and its green cone improves too (Chamfer
2.43 → 2.06 %, NC 0.850 → 0.859, 8/8 both). Fast preset, seed 0, ``python scripts/evaluate.py --suites
geometry --geometry.methods lmc-sds --geometry.seeds 0 --geometry.prompts P [--set
regularizers.normal_smooth=100,regularizers.opacity_entropy=10]``, 2026-12-02."""


def _world_latent_prior(cfg: RunConfig) -> None:
    """The world's settings, with the geometry regularisers weighed against the latent prior's stronger
    pull (:data:`LATENT_GRADIENT_RATIO`)."""
    _world_prior(cfg)
    if cfg.method in LATENT_RATIO_EXEMPT:  # settings of one method: keyed on its registered name
        return
    cfg.regularizers.normal_smooth *= LATENT_GRADIENT_RATIO
    cfg.regularizers.opacity_entropy *= LATENT_GRADIENT_RATIO


PRIOR_TUNING: dict[str, Callable[[RunConfig], None]] = {
    "builtin": _world_latent_prior,
    "builtin-pixel32": _world_prior,
}
"""Adjustments measured for each shipped prior (:data:`engine.priors.SHIPPED_PRIORS`), by its name."""


def prior_tuning(identity: PriorIdentity) -> Callable[[RunConfig], None] | None:
    """The adjustments measured for a prior, chosen by which weights it is (not by how it was named): a
    shipped prior's weights get its :data:`PRIOR_TUNING` wherever they live."""
    if identity.fingerprint is None:
        return None
    for name, tune in PRIOR_TUNING.items():
        if identity.fingerprint == weights_fingerprint(SHIPPED_PRIORS[name].folder):
            return tune
    return None


def build_config(
    prompt: str,
    method: str = "sds",
    prior: str = "builtin",
    preset: str = "fast",
    overrides: dict[str, Any] | None = None,
) -> RunConfig:
    """Defaults → method defaults → prior tuning → preset → ``overrides`` (dotted paths, e.g.
    ``{"train.steps": 100}``), then :meth:`RunConfig.validate`. ``prior`` is resolved here (folders are
    looked at, nothing is loaded), so a prior that does not exist is refused before any work."""
    guidance = method_config(method)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    identity = resolve_prior_spec(prior).identity()
    cfg = RunConfig(prompt=prompt, prior=prior, preset=preset, guidance=guidance)
    tuning = prior_tuning(identity)
    if tuning is not None:
        tuning(cfg)
    PRESETS[preset](cfg)
    for path, value in (overrides or {}).items():
        set_path(cfg, path, value)
    cfg.validate()
    cfg.guidance.check_prior(identity)  # e.g. LMC-SDS needs a corrective for these weights
    return cfg


def set_path(cfg: Any, path: str, value: Any) -> None:
    """Set a nested field by dotted path; unknown paths are an error naming the path."""
    *parents, leaf = path.split(".")
    obj = cfg
    for name in parents:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, name):
            raise ValueError(f"unknown setting {path!r}")
        obj = getattr(obj, name)
    if not dataclasses.is_dataclass(obj) or leaf not in {f.name for f in dataclasses.fields(obj)}:
        method = getattr(cfg, "method", None) if path.startswith("guidance.") else None
        raise ValueError(f"unknown setting {path!r}" + (f" for method {method}" if method else ""))
    setattr(obj, leaf, value)
