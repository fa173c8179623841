"""Step 5 of the export: a UV atlas with xatlas (charts cut at seams, packed into one square texture).

xatlas splits vertices along chart seams; ``vmapping`` says which input vertex each output vertex came
from, so the smooth normals of the unsplit mesh are carried over (no shading creases at UV seams).
UVs follow trimesh's (and OBJ's) convention: origin at the image's bottom-left, v up; the glTF writer flips v.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
import xatlas


@dataclass
class UVMesh:
    """A triangle mesh split at UV seams: one position, normal and uv per vertex."""

    positions: np.ndarray
    """[V, 3] float32, engine frame."""
    normals: np.ndarray
    """[V, 3] float32 unit vertex normals of the unsplit mesh (angle-weighted face normals, smooth across seams)."""
    faces: np.ndarray
    """[F, 3] int32, counter-clockwise seen from outside."""
    uvs: np.ndarray
    """[V, 2] float32 in [0, 1], v up."""
    gap: float = 2.0
    """Smallest distance between two charts, in texels of the texture the atlas was packed for."""

    @property
    def n_faces(self) -> int:
        return len(self.faces)


def unit_vertex_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """[V, 3] float32 vertex normals of unit length (glTF requires it of NORMAL).

    The angle-weighted mean of the face normals can vanish where faces around a vertex cancel (a fin or a
    sliver left by decimation); such a vertex takes the normal of its largest adjacent face, and a vertex
    with no usable face (+Z). Normalised in float64, then cast, so the length is 1 to float32 precision."""
    n = np.asarray(mesh.vertex_normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=1)
    bad = ~(length > 1e-6)
    if bad.any():
        fn = np.asarray(mesh.face_normals, dtype=np.float64)
        verts = mesh.faces.T.ravel()  # every (vertex, face) incidence
        faces = np.tile(np.arange(len(mesh.faces)), 3)
        order = np.lexsort((-np.asarray(mesh.area_faces)[faces], verts))  # by vertex, largest face first
        first_v, first_i = np.unique(verts[order], return_index=True)
        fallback = np.tile([0.0, 0.0, 1.0], (len(n), 1))
        fallback[first_v] = fn[faces[order][first_i]]
        flen = np.linalg.norm(fallback, axis=1)
        fallback[~(flen > 1e-6)] = (0.0, 0.0, 1.0)
        n[bad] = fallback[bad]
        length = np.linalg.norm(n, axis=1)
    return np.ascontiguousarray(n / length[:, None], dtype=np.float32)


def unwrap(mesh: trimesh.Trimesh, texture_size: int, padding: int) -> UVMesh:
    """Chart and pack ``mesh`` for a ``texture_size``² texture with ``padding`` texels between charts."""
    positions = np.ascontiguousarray(mesh.vertices, dtype=np.float32)
    faces = np.ascontiguousarray(mesh.faces, dtype=np.uint32)
    normals = unit_vertex_normals(mesh)
    atlas = xatlas.Atlas()
    atlas.add_mesh(positions, faces, normals)
    pack = xatlas.PackOptions()
    pack.resolution = texture_size
    pack.padding = padding
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    if atlas.atlas_count != 1:
        raise RuntimeError(f"xatlas packed {atlas.atlas_count} atlases; expected one")
    vmapping, indices, uvs = atlas[0]
    # xatlas may make the atlas somewhat larger than ``resolution`` (e.g. 1191×1228 for 1024) and normalises
    # UVs by its own size, so the padding shrinks by that factor in the texture.
    gap = padding * texture_size / max(atlas.width, atlas.height, texture_size)
    return UVMesh(
        positions=positions[vmapping],
        normals=normals[vmapping],
        faces=indices.astype(np.int32),
        uvs=uvs.astype(np.float32),
        gap=gap,
    )
