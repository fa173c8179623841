"""Settings of the field → textured-mesh export (one typed config; :func:`engine.export.export_asset` runs it).

Units and axes of the written files: glTF units are metres and +Y is up; the engine's frame is Z-up with the
object's front facing −Y, and the writers map (x, y, z) → (x, z, −y), which Blender's importer maps back.
By default one scene unit is one metre (the scene box [-1, 1]³ is 2 m wide) and the object is placed to
stand on the ground: its lowest point at height 0 and its bounding box centred over the origin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MIN_RESOLUTION = 16
TEXTURE_SIZES = tuple(2**k for k in range(6, 14))  # 64 … 8192


@dataclass
class MeshExportConfig:
    """Field → mesh → decimated, UV-unwrapped, texture-baked .glb."""

    resolution: int = 160
    """Density grid cells per axis over the scene box (time and memory grow as N³; 160 takes ~3 s on one CPU thread)."""
    iso_density: float | None = None
    """σ on the surface. None: automatic, the density at which rays through the grid reach iso_opacity, so the mesh outline matches the rendered previews."""
    iso_opacity: float = 0.5
    """Opacity (between 0 and 1) that defines the surface for the automatic iso level."""
    chunk: int = 1 << 16
    """Points per field query while building the grid and baking."""
    solid: bool = True
    """Make the grid one solid before marching cubes: keep the largest piece, fill cavities, close pin-holes
    (see engine/export/solid.py); the mesh is then one closed piece. false: every piece above min-component."""
    close_voxels: int = 1
    """With solid: radius in grid cells of the closing that fills pin-holes and tunnels (0: off)."""
    min_component: float = 0.05
    """Without solid: drop loose pieces with fewer faces than this fraction of the largest (floaters); 0 keeps all."""
    smooth_iterations: int = 3
    """Taubin smoothing passes over the marching-cubes surface (removes voxel steps without shrinking); 0: off."""
    target_faces: int = 20000
    """Decimate to about this many triangles (0: keep every marching-cubes triangle; UV unwrapping slows down)."""
    texture_size: int = 1024
    """Side of the square base-colour texture in pixels (a power of two, 64 … 8192)."""
    uv_padding: int = 4
    """Texels between UV islands (xatlas packs a little larger than the texture, so slightly fewer in the image); texels outside the islands are filled from the nearest island."""
    placement: Literal["ground", "center", "scene"] = "ground"
    """ground: lowest point at height 0, centred over the origin (stands on Blender's floor); center: bounding-box centre at the origin; scene: keep the engine's coordinates."""
    height: float | None = None
    """Scale the object to this height in metres. None: 1 scene unit = 1 m."""
    roughness: float = 0.9
    """PBR roughness of the material (metallic is 0): matte, since the texture holds albedo only."""
    write_obj: bool = False
    """Also write <stem>.obj and <stem>.mtl (Y-up like the .glb) using <stem>_texture.png."""
    turntable_views: int = 8
    """Views around the exported mesh in <stem>_turntable.png (0: no preview)."""
    turntable_size: int = 256
    """Side of each turntable view in pixels."""

    def validate(self) -> None:
        """Raise ValueError naming the setting for anything the export cannot run with."""
        if self.resolution < MIN_RESOLUTION:
            raise ValueError(f"export resolution must be at least {MIN_RESOLUTION} (got {self.resolution})")
        if self.iso_density is not None and not self.iso_density > 0:
            raise ValueError(f"export iso-density must be > 0 or none (got {self.iso_density})")
        if not 0.0 < self.iso_opacity < 1.0:
            raise ValueError(f"export iso-opacity must be between 0 and 1 (got {self.iso_opacity})")
        if self.chunk < 1024:
            raise ValueError(f"export chunk must be at least 1024 points (got {self.chunk})")
        if not 0 <= self.close_voxels <= 8:
            raise ValueError(f"export close-voxels must be in 0..8 (got {self.close_voxels})")
        if not 0.0 <= self.min_component < 1.0:
            raise ValueError(f"export min-component must be in [0, 1) (got {self.min_component})")
        if self.smooth_iterations < 0:
            raise ValueError(f"export smooth-iterations must be >= 0 (got {self.smooth_iterations})")
        if self.target_faces != 0 and self.target_faces < 100:
            raise ValueError(
                f"export target-faces must be 0 (no decimation) or >= 100 (got {self.target_faces})"
            )
        if self.texture_size not in TEXTURE_SIZES:
            raise ValueError(
                f"export texture-size must be a power of two from {TEXTURE_SIZES[0]} to {TEXTURE_SIZES[-1]} "
                f"(got {self.texture_size})"
            )
        if not 1 <= self.uv_padding <= self.texture_size // 32:
            raise ValueError(
                f"export uv-padding must be between 1 and texture-size/32 = {self.texture_size // 32} "
                f"(got {self.uv_padding})"
            )
        if self.placement not in ("ground", "center", "scene"):
            raise ValueError(f"export placement must be ground, center or scene (got {self.placement!r})")
        if self.height is not None and not self.height > 0:
            raise ValueError(f"export height must be > 0 metres or none (got {self.height})")
        if not 0.0 <= self.roughness <= 1.0:
            raise ValueError(f"export roughness must be in [0, 1] (got {self.roughness})")
        if self.turntable_views < 0 or (self.turntable_views and self.turntable_size < 32):
            raise ValueError(
                "export turntable-views must be >= 0 and turntable-size >= 32 "
                f"(got {self.turntable_views} views of {self.turntable_size} px)"
            )
