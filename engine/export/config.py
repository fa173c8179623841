"""Settings of the field → textured-mesh export (one typed config; :func:`engine.export.export_asset` runs it).

Units and axes of the written files: glTF units are metres and +Y is up; the engine's frame is Z-up with the
object's front facing −Y, and the writers map (x, y, z) → (x, z, −y), which Blender's importer maps back.
By default one scene unit is one metre (the scene box [-1, 1]³ is 2 m wide) and the object is placed to
stand on the ground: its lowest point at height 0 and its bounding box centred over the origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engine.configbase import Config, setting

MIN_RESOLUTION = 16
TEXTURE_SIZES = tuple(2**k for k in range(6, 14))  # 64 … 8192


@dataclass
class MeshExportConfig(Config):
    """Field → mesh → decimated, UV-unwrapped, texture-baked .glb."""

    resolution: int = setting(160, ge=MIN_RESOLUTION, serve=(16, 512))
    """Density grid cells per axis over the scene box (time and memory grow as N³; 160 takes ~3 s on one CPU thread)."""
    iso_density: float | None = setting(None, gt=0.0)
    """σ on the surface. None: automatic, the density at which rays through the grid reach iso_opacity, so the mesh outline matches the rendered previews."""
    iso_opacity: float = setting(0.5, gt=0.0, lt=1.0)
    """Opacity (between 0 and 1) that defines the surface for the automatic iso level."""
    chunk: int = setting(1 << 16, ge=1024, serve=(1024, 1 << 20))
    """Points per field query while building the grid and baking."""
    solid: bool = True
    """Make the grid one solid before marching cubes: keep the largest piece, fill cavities, close pin-holes
    (see engine/export/solid.py); the mesh is then one closed piece. false: every piece above min-component."""
    close_voxels: int = setting(1, ge=0, le=8)
    """With solid: radius in grid cells of the closing that fills pin-holes and tunnels (0: off)."""
    min_component: float = setting(0.05, ge=0.0, lt=1.0)
    """Without solid: drop loose pieces with fewer faces than this fraction of the largest (floaters); 0 keeps all."""
    smooth_iterations: int = setting(3, ge=0, serve=(0, 100))
    """Taubin smoothing passes over the marching-cubes surface (removes voxel steps without shrinking); 0: off."""
    target_faces: int = setting(20000, ge=0, serve=(0, 500_000))
    """Decimate to about this many triangles (0: keep every marching-cubes triangle; UV unwrapping slows down)."""
    texture_size: int = setting(1024, serve=(64, 4096))
    """Side of the square base-colour texture in pixels (a power of two, 64 … 8192)."""
    uv_padding: int = setting(4, ge=1, serve=(1, 128))
    """Texels between UV islands (xatlas packs a little larger than the texture, so slightly fewer in the image); texels outside the islands are filled from the nearest island."""
    placement: Literal["ground", "center", "scene"] = "ground"
    """ground: lowest point at height 0, centred over the origin (stands on Blender's floor); center: bounding-box centre at the origin; scene: keep the engine's coordinates."""
    height: float | None = setting(None, gt=0.0)
    """Scale the object to this height in metres. None: 1 scene unit = 1 m."""
    roughness: float = setting(0.9, ge=0.0, le=1.0)
    """PBR roughness of the material (metallic is 0): matte, since the texture holds albedo only."""
    write_obj: bool = False
    """Also write <stem>.obj and <stem>.mtl (Y-up like the .glb) using <stem>_texture.png."""
    turntable_views: int = setting(8, ge=0, serve=(0, 32))
    """Views around the exported mesh in <stem>_turntable.png (0: no preview)."""
    turntable_size: int = setting(256, serve=(16, 1024))
    """Side of each turntable view in pixels."""

    def check(self) -> None:
        if self.target_faces != 0 and self.target_faces < 100:
            raise ValueError(f"target_faces must be 0 (no decimation) or >= 100 (got {self.target_faces})")
        if self.texture_size not in TEXTURE_SIZES:
            raise ValueError(
                f"texture_size must be a power of two from {TEXTURE_SIZES[0]} to {TEXTURE_SIZES[-1]} "
                f"(got {self.texture_size})"
            )
        if not self.uv_padding <= self.texture_size // 32:
            raise ValueError(
                f"uv_padding must be between 1 and texture_size/32 = {self.texture_size // 32} "
                f"(got {self.uv_padding})"
            )
        if self.turntable_views and self.turntable_size < 32:
            raise ValueError(
                f"turntable_size must be >= 32 px when there are views (got {self.turntable_size})"
            )
