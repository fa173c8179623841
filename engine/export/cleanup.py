"""Steps 3–4 of the export: cleanup (floaters, degenerate faces, outward winding, light smoothing) and decimation.

Floaters are loose pieces of the marching-cubes surface much smaller than the main one (density the
optimisation left in mid-air). Winding is fixed per piece from the sign of its enclosed volume
(Σ det[a, b, c] / 6 over its triangles): a closed piece wound inside-out has negative volume. Decimation is
quadric edge collapse (Garland & Heckbert 1997) via ``fast-simplification``.
"""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class CleanupStats:
    components: int
    """Loose pieces found."""
    dropped_components: int
    """Pieces removed as floaters."""
    flipped_components: int
    """Pieces whose winding was reversed to face outwards."""


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Component label per face (faces sharing a vertex are connected)."""
    a = np.concatenate([faces[:, 0], faces[:, 1]])
    b = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_vertices, n_vertices))
    _, vertex_label = connected_components(graph, directed=False)
    return vertex_label[faces[:, 0]]


def clean(
    mesh: trimesh.Trimesh, min_component: float, smooth_iterations: int, largest_only: bool = False
) -> tuple[trimesh.Trimesh, CleanupStats]:
    """Drop floaters (every piece but the largest with ``largest_only``) and degenerate faces, orient every
    piece outwards, optionally Taubin-smooth."""
    mesh = mesh.copy()
    keep = mesh.nondegenerate_faces()
    if not keep.all() and is_closed(mesh):
        # A zero-area sliver of a closed marching-cubes surface (three distinct, collinear vertices) is part
        # of its topology: dropping it leaves a hole (seen: 4 slivers → 6 open edges on a red cube). Drop it
        # only where it repeats a vertex index; decimation collapses the rest and keeps the surface closed.
        f = mesh.faces
        keep |= (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    mesh.update_faces(keep)
    mesh.remove_unreferenced_vertices()
    faces, verts = mesh.faces, mesh.vertices
    label = face_components(faces, len(verts))
    n_comp = int(label.max()) + 1 if len(label) else 0
    counts = np.bincount(label, minlength=n_comp)
    keep_comp = counts >= min_component * counts.max()
    if largest_only and n_comp:
        keep_comp = np.arange(n_comp) == counts.argmax()
    # Signed volume per piece: the sum of det[a, b, c] / 6 over its faces.
    tri = verts[faces]
    vol = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    flip_comp = np.bincount(label, weights=vol, minlength=n_comp) < 0
    new_faces = faces.copy()
    flip = flip_comp[label]
    new_faces[flip] = new_faces[flip][:, ::-1]
    new_faces = new_faces[keep_comp[label]]
    out = trimesh.Trimesh(verts, new_faces, process=False)
    out.remove_unreferenced_vertices()
    if smooth_iterations > 0:
        trimesh.smoothing.filter_taubin(out, lamb=0.5, nu=0.53, iterations=smooth_iterations)
    stats = CleanupStats(n_comp, int((~keep_comp).sum()), int((flip_comp & keep_comp).sum()))
    return out, stats


def edge_use_counts(faces: np.ndarray) -> np.ndarray:
    """How many faces use each distinct (undirected) edge: 2 on a closed surface, 1 on a hole's rim, 3+ where
    the surface touches itself."""
    edges = np.sort(np.asarray(faces)[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def is_closed(mesh: trimesh.Trimesh) -> bool:
    """Every edge is shared by exactly two faces (no holes, no fins or self-touching edges)."""
    return bool(len(mesh.faces)) and bool((edge_use_counts(mesh.faces) == 2).all())


def decimate(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    """Quadric decimation to about ``target_faces`` triangles (no-op when already below, or target 0).

    A closed mesh stays closed: quadric collapses can pinch thin parts into non-manifold edges, and then
    the holes are filled or, failing that, the decimation is redone at twice the face count (up to the
    undecimated mesh, which is closed)."""
    if target_faces <= 0 or len(mesh.faces) <= target_faces:
        return mesh
    closed = is_closed(mesh)
    while True:
        out = _simplify(mesh, target_faces)
        if not closed or is_closed(out):
            return out
        trimesh.repair.fill_holes(out)
        if is_closed(out):
            return out
        target_faces *= 2
        if target_faces >= len(mesh.faces):
            return mesh


def _simplify(mesh: trimesh.Trimesh, target_faces: int) -> trimesh.Trimesh:
    v, f = fast_simplification.simplify(
        np.ascontiguousarray(mesh.vertices, dtype=np.float64),
        np.ascontiguousarray(mesh.faces, dtype=np.int32),
        target_count=int(target_faces),
    )
    out = trimesh.Trimesh(v, f, process=False)
    out.update_faces(out.nondegenerate_faces())
    out.remove_unreferenced_vertices()
    return out
