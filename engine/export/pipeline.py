"""``export_asset(field, cfg, out_path)``: the whole field → .glb export, one timed step per module.

    grid (mesh.py) → iso (mesh.py) → solid (solid.py) → marching cubes (mesh.py) → cleanup, decimate (cleanup.py)
    → UV atlas (uv.py) → bake (bake.py) → place + encode (gltf.py) → turntable (turntable.py) → write

Everything is computed in memory first; the files are then written to temp names and renamed together,
so a bad setting or a failure at any step leaves nothing half-written. Files for ``out/asset.glb``:
``asset.glb`` (texture embedded), ``asset_texture.png``, ``asset_turntable.png`` and, optionally,
``asset.obj`` + ``asset.mtl``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from engine.atomic import write_all
from engine.export.bake import bake_texture
from engine.export.cleanup import CleanupStats, clean, decimate
from engine.export.config import MeshExportConfig
from engine.export.gltf import (
    Z_UP_TO_Y_UP,
    Placement,
    glb_bytes,
    obj_files,
    place,
    png_bytes,
    textured_mesh,
)
from engine.export.mesh import auto_iso_level, check_grid_memory, density_grid, marching_cubes
from engine.export.solid import SolidStats, solidify
from engine.export.turntable import turntable
from engine.export.uv import unwrap


@dataclass
class ExportResult:
    """What :func:`export_asset` wrote and how long each step took."""

    paths: dict[str, Path]
    """Files written by kind: glb, texture, turntable, obj, mtl."""
    faces: dict[str, int]
    """Triangle counts after marching_cubes, cleanup and decimate, and the final (UV-split) mesh's vertices."""
    iso_density: float
    """σ on the surface (automatic or as configured)."""
    iso_auto: bool
    """Whether the iso level was derived from the field."""
    cleanup: CleanupStats
    solid: SolidStats | None
    """What the solid step changed (None when ``solid`` is off)."""
    texture_coverage: float
    """Fraction of texels inside UV charts."""
    placement: Placement
    """Engine frame → file transform (scale in metres per scene unit, origin, 4×4 matrix)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per step, in pipeline order."""

    @property
    def n_faces(self) -> int:
        return self.faces["final"]

    @property
    def n_vertices(self) -> int:
        return self.faces["vertices"]

    def to_dict(self) -> dict:
        return {
            "paths": {k: str(v) for k, v in self.paths.items()},
            "faces": dict(self.faces),
            "iso_density": self.iso_density,
            "iso_auto": self.iso_auto,
            "cleanup": asdict(self.cleanup),
            "solid": None if self.solid is None else asdict(self.solid),
            "texture_coverage": self.texture_coverage,
            "placement": self.placement.to_dict(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def output_paths(out_path: Path, with_obj: bool, with_turntable: bool) -> dict[str, Path]:
    """Files written for ``out_path`` (a .glb path), by kind."""
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".glb":
        raise ValueError(f"export path {out_path} must end in .glb")
    stem = out_path.with_suffix("")
    paths = {"glb": out_path, "texture": Path(f"{stem}_texture.png")}
    if with_turntable:
        paths["turntable"] = Path(f"{stem}_turntable.png")
    if with_obj:
        paths["obj"], paths["mtl"] = stem.with_suffix(".obj"), stem.with_suffix(".mtl")
    return paths


def export_asset(field, cfg: MeshExportConfig, out_path: Path | str) -> ExportResult:
    """Export ``field`` (``.density``, ``.albedo``, ``.bound``) as a textured .glb at ``out_path``."""
    cfg.validate()
    check_grid_memory(cfg.resolution)
    paths = output_paths(Path(out_path), cfg.write_obj, cfg.turntable_views > 0)
    seconds: dict[str, float] = {}

    @contextmanager
    def step(name: str):
        t = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - t

    with step("grid"):
        sigma = density_grid(field, cfg.resolution, cfg.chunk)
    with step("iso"):
        voxel = 2.0 * field.bound / cfg.resolution
        auto = cfg.iso_density is None
        iso = auto_iso_level(sigma, voxel, cfg.iso_opacity) if auto else float(cfg.iso_density)
    solid = None
    if cfg.solid:
        with step("solid"):
            sigma, solid = solidify(sigma, iso, cfg.close_voxels)
    with step("marching_cubes"):
        mesh = marching_cubes(sigma, iso, field.bound)
        del sigma
    faces = {"marching_cubes": len(mesh.faces)}
    with step("cleanup"):
        mesh, stats = clean(mesh, cfg.min_component, cfg.smooth_iterations, largest_only=cfg.solid)
    faces["cleanup"] = len(mesh.faces)
    with step("decimate"):
        mesh = decimate(mesh, cfg.target_faces)
    faces["decimate"] = len(mesh.faces)
    with step("uv"):
        uvm = unwrap(mesh, cfg.texture_size, cfg.uv_padding)
    with step("bake"):
        baked = bake_texture(field, uvm, cfg.texture_size, cfg.chunk)
    with step("encode"):
        placement = place(uvm.positions, cfg.placement, cfg.height)
        world = placement.engine_to_world()
        pos_world = uvm.positions @ world[:3, :3].T + world[:3, 3]  # Blender frame: Z-up, metres
        rot = Z_UP_TO_Y_UP[:3, :3]
        pos_file, nrm_file = pos_world @ rot.T, uvm.normals @ rot.T
        stem = paths["glb"].stem
        mesh_file = textured_mesh(pos_file, uvm.faces, nrm_file, uvm.uvs, baked.texture, cfg.roughness, stem)
        files = {paths["glb"]: glb_bytes(mesh_file, stem), paths["texture"]: png_bytes(baked.texture)}
        if cfg.write_obj:
            obj, mtl = obj_files(pos_file, uvm.faces, nrm_file, uvm.uvs, stem, paths["texture"].name)
            files[paths["obj"]], files[paths["mtl"]] = obj, mtl
    if cfg.turntable_views > 0:
        with step("turntable"):
            sheet = turntable(
                pos_world,
                uvm.faces,
                uvm.normals.astype(np.float64),
                uvm.uvs,
                baked.texture,
                cfg.turntable_views,
                cfg.turntable_size,
            )
            files[paths["turntable"]] = png_bytes(sheet)
    with step("write"):
        write_all(files)
    faces.update(final=uvm.n_faces, vertices=len(uvm.positions))
    return ExportResult(
        paths=paths,
        faces=faces,
        iso_density=iso,
        iso_auto=auto,
        cleanup=stats,
        solid=solid,
        texture_coverage=baked.coverage,
        placement=placement,
        seconds=seconds,
    )
