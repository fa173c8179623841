"""Volume renderer: stratified samples inside the scene box, occupancy skipping, alpha compositing.

For a ray r(t) = o + t·d with samples t_i and spacing δ_i (NeRF, Mildenhall et al. 2020, eq. 3):
    α_i = 1 − exp(−σ_i δ_i),   T_i = Π_{j<i} (1 − α_j),   w_i = T_i α_i
    C = Σ w_i c_i + (1 − Σ w_i) · background,   opacity = Σ w_i,   depth = Σ w_i t_i / opacity.

Shading (DreamFusion §3.1): with a random point light l, colour = albedo · (a + (1 − a) · max(0, n·l)),
n = −∇σ/‖∇σ‖; "textureless" replaces the albedo by white so the prior judges the geometry alone.
To stay cheap on a CPU the normal is taken once per ray, at the expected surface point (deferred
shading), by central finite differences of σ: 6 density queries per ray instead of per sample.
The finite differences are differentiable, so shading still sends gradients into the geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from engine.cameras import CameraBatch
from engine.configbase import Config, setting
from engine.render.occupancy import OccupancyConfig, OccupancyGrid
from engine.render.rays import camera_rays, intersect_box

if TYPE_CHECKING:
    from engine.fields.nerf import NeRFField


class Shading(str, Enum):
    ALBEDO = "albedo"
    """Unlit albedo."""
    LAMBERTIAN = "lambertian"
    """Albedo times diffuse lighting from a random point light."""
    TEXTURELESS = "textureless"
    """White albedo, lit: geometry only."""


@dataclass
class RendererConfig(Config):
    """Sampling, skipping, background and shading."""

    n_samples: int = setting(64, ge=1, serve=(4, 512))
    """Stratified samples per ray between the ray's entry and exit of the scene box."""
    occupancy: OccupancyConfig = field(default_factory=OccupancyConfig)
    """Empty-space skipping grid."""
    background: Literal["solid", "learned"] = "solid"
    """solid: fixed ``background_color``; learned: one RGB colour optimised with the field."""
    background_color: tuple[float, float, float] = setting((0.7, 0.7, 0.7), ge=0.0, le=1.0)
    """Background RGB in [0, 1] (also the initial value of a learned background). Matches the built-in prior's world."""
    ambient: float = setting(0.3, ge=0.0, le=1.0)
    """Ambient light a in the shading model (the rest is diffuse)."""
    shading_start_step: int = setting(200, ge=0, serve=(0, 20000))
    """Steps of albedo-only rendering before random shading starts (lets a coarse shape form first)."""
    lambertian_prob: float = setting(0.75, ge=0.0, le=1.0)
    """After the warm-up, probability that a step is shaded at all (otherwise albedo only)."""
    textureless_prob: float = setting(0.5, ge=0.0, le=1.0)
    """Probability that a shaded step is textureless (white albedo)."""
    light: Literal["around_camera", "camera_key"] = "around_camera"
    """around_camera: a random direction near the camera (DreamFusion); camera_key: a key light fixed in camera
    space (``key_light``) plus jitter — the lighting of the built-in prior's training images."""
    key_light: tuple[float, float, float] = (-0.45, 0.55, 0.70)
    """Direction towards the key light in camera space (x right, y up, z towards the viewer), for camera_key."""
    light_jitter: float = setting(0.5, ge=0.0)
    """Standard deviation of the Gaussian jitter added to the light direction before normalising."""
    normal_eps: float = setting(0.01, gt=0.0, le=0.2)
    """Finite-difference step for normals (scene units)."""
    chunk_rays: int = setting(8192, ge=1, serve=(256, 1 << 17))
    """Rays per chunk when rendering without gradients (previews, evaluation)."""

    def setup(self, bound: float) -> VolumeRenderer:
        return VolumeRenderer(self, bound)


@dataclass
class RenderOutput:
    rgb: Float[Tensor, "B 3 H W"]
    """Composited colour over the background, in [0, 1]."""
    opacity: Float[Tensor, "B 1 H W"]
    depth: Float[Tensor, "B 1 H W"]
    """Expected ray distance of the surface (0 where nothing is hit)."""
    n_samples_evaluated: int = 0
    """Field queries made (after skipping); for speed diagnostics."""
    surface: SurfacePoints | None = None
    """Expected surface points of the rays that see the object (training renders only; for regularisers)."""


@dataclass
class SurfacePoints:
    """Per ray that sees the object (opacity > ``SURFACE_OPACITY``): where it meets the surface."""

    points: Float[Tensor, "n 3"]
    """Expected surface point o + depth · d (differentiable through the depth)."""
    dirs: Float[Tensor, "n 3"]
    """Unit ray direction (from the camera into the scene)."""
    opacity: Float[Tensor, " n"]
    """The ray's rendered opacity."""


SURFACE_OPACITY = 0.05
"""A ray with less opacity sees no surface: it is neither shaded nor regularised."""


def fd_gradient(fn, p: Float[Tensor, "n 3"], eps: float, bound: float) -> Float[Tensor, "n 3"]:
    """∇fn at ``p`` by central differences with step ``eps`` (6 queries of ``fn`` per point), differentiable.

    Points are kept ``eps`` inside the box [−bound, bound]³ so every probe stays in it."""
    p = p.clamp(-bound + eps, bound - eps)
    offsets = torch.eye(3, device=p.device) * eps
    probe = torch.cat([p[:, None] + offsets[None], p[:, None] - offsets[None]], 1)  # [n, 6, 3]
    values = fn(probe.reshape(-1, 3)).reshape(-1, 6)
    return (values[:, :3] - values[:, 3:]) / (2 * eps)


def density_normals(
    field: NeRFField, p: Float[Tensor, "n 3"], eps: float, bound: float
) -> Float[Tensor, "n 3"]:
    """n = −∇σ/‖∇σ‖ (:func:`fd_gradient` of the density): differentiable, so a loss on n reaches the geometry."""
    return -torch.nn.functional.normalize(fd_gradient(field.density, p, eps, bound), dim=-1)


class VolumeRenderer(nn.Module):
    def __init__(self, cfg: RendererConfig, bound: float):
        super().__init__()
        if cfg.n_samples < 2:
            raise ValueError("renderer n_samples must be at least 2")
        self.cfg, self.bound = cfg, bound
        self.occupancy = cfg.occupancy.setup(bound)
        bg = torch.tensor(cfg.background_color, dtype=torch.float32)
        if cfg.background == "learned":
            # Stored in logit space so it stays in [0, 1].
            self.background_logit = nn.Parameter(torch.logit(bg.clamp(1e-3, 1 - 1e-3)))
        else:
            self.register_buffer("background_logit", torch.logit(bg.clamp(1e-3, 1 - 1e-3)))

    @property
    def occupancy_grid(self) -> OccupancyGrid:
        return self.occupancy

    def background_rgb(self) -> Float[Tensor, "3"]:
        return torch.sigmoid(self.background_logit)

    def pick_shading(self, step: int, generator: torch.Generator) -> Shading:
        """Random shading mode for a training step (DreamFusion's schedule)."""
        u = torch.rand(2, generator=generator)
        if step < self.cfg.shading_start_step or u[0] >= self.cfg.lambertian_prob:
            return Shading.ALBEDO
        return Shading.TEXTURELESS if u[1] < self.cfg.textureless_prob else Shading.LAMBERTIAN

    def random_light(self, cams: CameraBatch, generator: torch.Generator) -> Float[Tensor, "B 3"]:
        """World-space directions towards the light for each camera (see ``RendererConfig.light``)."""
        if self.cfg.light == "camera_key":
            key = torch.nn.functional.normalize(
                torch.tensor(self.cfg.key_light, device=cams.c2w.device), dim=0
            )
            base = cams.c2w[:, :3, :3] @ key
        else:  # DreamFusion samples the light around the camera position
            base = torch.nn.functional.normalize(cams.c2w[:, :3, 3], dim=-1)
        jitter = self.cfg.light_jitter * torch.randn(base.shape, generator=generator).to(base.device)
        return torch.nn.functional.normalize(base + jitter, dim=-1)

    def render(
        self,
        field: NeRFField,
        cams: CameraBatch,
        size: int,
        shading: Shading = Shading.ALBEDO,
        light_dir: Float[Tensor, "B 3"] | None = None,
        generator: torch.Generator | None = None,
        perturb: bool = True,
    ) -> RenderOutput:
        """Render B square images of side ``size``.

        ``perturb`` jitters the stratified samples (training); off gives deterministic renders.
        Shaded modes need ``light_dir`` (see :meth:`random_light`).
        """
        if shading is not Shading.ALBEDO and light_dir is None:
            raise ValueError("shaded rendering needs light_dir")
        b = len(cams)
        origins, dirs = camera_rays(cams, size)
        origins, dirs = origins.reshape(-1, 3), dirs.reshape(-1, 3)
        light = None if light_dir is None else light_dir[:, None, :].expand(b, size * size, 3).reshape(-1, 3)
        rgb, opacity, depth, n_eval = self._render_rays(
            field, origins, dirs, shading, light, generator, perturb
        )
        seen = (opacity.detach() > SURFACE_OPACITY).nonzero().squeeze(-1)
        surface = SurfacePoints(origins[seen] + depth[seen, None] * dirs[seen], dirs[seen], opacity[seen])

        def img(x: Tensor) -> Tensor:
            return x.reshape(b, size, size, -1).permute(0, 3, 1, 2)

        return RenderOutput(img(rgb), img(opacity[:, None]), img(depth[:, None]), n_eval, surface)

    @torch.no_grad()
    def render_chunked(
        self,
        field: NeRFField,
        cams: CameraBatch,
        size: int,
        shading: Shading = Shading.ALBEDO,
        light_dir: Float[Tensor, "B 3"] | None = None,
    ) -> RenderOutput:
        """Deterministic render without gradients, in ray chunks (previews, evaluation)."""
        outs = []
        for i in range(len(cams)):
            one = cams[i]
            origins, dirs = (x.reshape(-1, 3) for x in camera_rays(one, size))
            light = None if light_dir is None else light_dir[i : i + 1].expand(size * size, 3)
            parts = [
                self._render_rays(
                    field, o, d, shading, None if light is None else light[s : s + len(o)], None, False
                )[:3]
                for s, (o, d) in zip(
                    range(0, len(origins), self.cfg.chunk_rays),
                    zip(origins.split(self.cfg.chunk_rays), dirs.split(self.cfg.chunk_rays)),
                )
            ]
            outs.append([torch.cat(p) for p in zip(*parts)])
        rgb, opacity, depth = (torch.stack([o[k] for o in outs]) for k in range(3))

        def img(x: Tensor) -> Tensor:
            return x.reshape(len(cams), size, size, -1).permute(0, 3, 1, 2)

        return RenderOutput(img(rgb), img(opacity[..., None]), img(depth[..., None]))

    def _render_rays(
        self,
        field: NeRFField,
        origins: Float[Tensor, "R 3"],
        dirs: Float[Tensor, "R 3"],
        shading: Shading,
        light: Float[Tensor, "R 3"] | None,
        generator: torch.Generator | None,
        perturb: bool,
    ) -> tuple[Tensor, Tensor, Tensor, int]:
        n_rays, s = origins.shape[0], self.cfg.n_samples
        device = origins.device
        t_near, t_far, hit = intersect_box(origins, dirs, self.bound)
        t_far = torch.where(hit, t_far, t_near)
        # Stratified samples: one per bin, jittered within the bin when training.
        u = (
            torch.rand(n_rays, s, generator=generator).to(device)
            if perturb
            else torch.full((n_rays, s), 0.5, device=device)
        )
        bins = (torch.arange(s, device=device, dtype=torch.float32)[None] + u) / s
        t = t_near[:, None] + (t_far - t_near)[:, None] * bins  # [R, S]
        delta = ((t_far - t_near) / s)[:, None].expand(n_rays, s)
        pts = origins[:, None, :] + t[..., None] * dirs[:, None, :]

        # Only samples on hit rays, inside occupied cells, reach the field.
        keep = hit[:, None].expand(n_rays, s) & self.occupancy.query(pts.reshape(-1, 3)).reshape(n_rays, s)
        idx = keep.reshape(-1).nonzero().squeeze(-1)
        sigma = torch.zeros(n_rays * s, device=device)
        albedo = torch.zeros(n_rays * s, 3, device=device)
        if idx.numel() > 0:
            sig_k, alb_k = field(pts.reshape(-1, 3)[idx])
            sigma = sigma.index_put((idx,), sig_k)
            albedo = albedo.index_put((idx,), alb_k)
        sigma, albedo = sigma.reshape(n_rays, s), albedo.reshape(n_rays, s, 3)

        alpha = 1.0 - torch.exp(-sigma * delta)
        trans = torch.cumprod(torch.cat([torch.ones(n_rays, 1, device=device), 1.0 - alpha + 1e-10], -1), -1)[
            :, :-1
        ]
        weights = alpha * trans
        opacity = weights.sum(-1)
        depth = (weights * t).sum(-1) / opacity.clamp(min=1e-6)
        depth = torch.where(opacity > 1e-4, depth, torch.zeros_like(depth))

        if shading is Shading.ALBEDO:
            colour = (weights[..., None] * albedo).sum(1)
        else:
            base = (
                opacity[:, None].expand(n_rays, 3)
                if shading is Shading.TEXTURELESS
                else (weights[..., None] * albedo).sum(1)
            )
            colour = base * self._diffuse(field, origins, dirs, depth, opacity, light)[:, None]
        rgb = colour + (1.0 - opacity[:, None]) * self.background_rgb()
        return rgb, opacity, depth, int(idx.numel())

    def _diffuse(
        self,
        field: NeRFField,
        origins: Tensor,
        dirs: Tensor,
        depth: Tensor,
        opacity: Tensor,
        light: Tensor | None,
    ) -> Float[Tensor, " R"]:
        """a + (1 − a)·max(0, n·l) at each ray's expected surface point (1 where the ray sees nothing)."""
        assert light is not None
        shade = torch.ones_like(depth)
        surf = (opacity > SURFACE_OPACITY).nonzero().squeeze(-1)
        if surf.numel() == 0:
            return shade
        p = origins[surf] + depth[surf, None] * dirs[surf]
        normal = density_normals(field, p, self.cfg.normal_eps, self.bound)
        lam = (normal * light[surf]).sum(-1).clamp(min=0.0)
        a = self.cfg.ambient
        return shade.index_put((surf,), a + (1.0 - a) * lam)
