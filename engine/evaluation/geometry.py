"""Geometry metrics: an exported asset's mesh against the world's true shape.

The prompt fixes the object but not its pose or size, so the asset is first aligned to the truth by a
similarity restricted to what the prompt leaves free — yaw about the up axis, uniform scale, translation —
chosen to minimise the symmetric Chamfer distance (a coarse yaw search, then a local refinement).
Then, with surface samples A (asset) and T (truth), d(x, Y) the distance to the nearest sample of Y and
D the diagonal of the true shape's bounding box:

    Chamfer            = ½ (mean_{a∈A} d(a, T) + mean_{t∈T} d(t, A)) / D            (reported in %)
    normal consistency = ½ (mean_{a∈A} |n_a · n_{T(a)}| + mean_{t∈T} |n_t · n_{A(t)}|)   (nearest samples)
    F-score at τ       = 2PR / (P + R),  P = share of a with d(a, T) < τD,  R = share of t with d(t, A) < τD

(the definitions of Occupancy Networks, Mescheder et al. 2019, and Tatarchenko et al. 2019 for the F-score).
They are computed on the asset's largest piece; the topology numbers — pieces, watertight, genus of the
largest piece (χ = V − E + F = 2 − 2g for a closed orientable surface) — on the whole mesh after welding the
vertices that the UV seams split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from engine.export.cleanup import edge_use_counts, face_components
from engine.export.gltf import Z_UP_TO_Y_UP
from engine.world.scene import BOUND_RADIUS, SHAPES, ObjectSpec

FSCORE_TAU = 0.02
"""F-score threshold as a fraction of the true bounding-box diagonal."""


@dataclass
class Topology:
    """Topology of a mesh after welding coincident vertices."""

    pieces: int
    """Connected pieces (faces sharing an edge or a vertex are connected)."""
    watertight: bool
    """Every edge of the whole mesh is shared by exactly two faces, consistently wound."""
    genus: int | None
    """Genus of the largest piece (None when that piece is not closed)."""
    boundary_edges: int
    """Edges used by only one face (the rims of holes)."""
    nonmanifold_edges: int
    """Edges used by three or more faces (self-touching crust)."""


@dataclass
class GeometryScore:
    """An asset scored against its true shape (see the module doc)."""

    chamfer: float
    """Symmetric Chamfer distance, % of the true bounding-box diagonal (a perfect mesh: ~0.4 from sampling)."""
    normal_consistency: float
    """Mean |cos| between nearest-sample normals, both ways, in [0, 1]."""
    fscore: float
    """F-score at 2 % of the diagonal, in [0, 1]."""
    pieces: int
    watertight: bool
    genus: int | None
    boundary_edges: int
    nonmanifold_edges: int
    yaw: float
    """Fitted yaw (degrees) that maps the asset onto the truth."""
    scale: float
    """Fitted uniform scale asset → truth."""

    def to_dict(self) -> dict:
        return asdict(self)


def weld(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh with vertices at the same position merged (UV seams and normals ignored)."""
    m = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    m.merge_vertices(merge_tex=True, merge_norm=True)
    m.remove_unreferenced_vertices()
    return m


def topology(mesh: trimesh.Trimesh) -> Topology:
    """Pieces, watertightness and the largest piece's genus of ``mesh`` (welded first)."""
    m = weld(mesh)
    counts = edge_use_counts(m.faces)
    boundary, nonmanifold = int((counts == 1).sum()), int((counts > 2).sum())
    label = face_components(m.faces, len(m.vertices))
    n_pieces = int(label.max()) + 1 if len(label) else 0
    largest = _piece(m, label, int(np.bincount(label).argmax())) if n_pieces else m
    lc = edge_use_counts(largest.faces)
    closed = bool(len(lc)) and bool((lc == 2).all())
    genus = None
    if closed:
        chi = len(largest.vertices) - len(lc) + len(largest.faces)
        genus = (2 - chi) // 2
    watertight = boundary == 0 and nonmanifold == 0 and bool(m.is_winding_consistent)
    return Topology(n_pieces, watertight, genus, boundary, nonmanifold)


def _piece(mesh: trimesh.Trimesh, label: np.ndarray, k: int) -> trimesh.Trimesh:
    """The faces of piece ``k`` as a mesh of their own (trimesh's split would fill holes)."""
    piece = trimesh.Trimesh(mesh.vertices, mesh.faces[label == k], process=False)
    piece.remove_unreferenced_vertices()
    return piece


def largest_piece(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The piece of ``mesh`` (welded) with the largest surface area."""
    m = weld(mesh)
    label = face_components(m.faces, len(m.vertices))
    if not len(label):
        return m
    area = np.bincount(label, weights=m.area_faces)
    return _piece(m, label, int(area.argmax()))


@lru_cache(maxsize=16)
def true_mesh(spec: ObjectSpec, resolution: int = 192) -> trimesh.Trimesh:
    """The world object's surface (engine frame, Z up, yaw 0, at the spec's scale) by marching cubes of its SDF."""
    r = BOUND_RADIUS * spec.scale * 1.05
    lin = torch.linspace(-r, r, resolution + 1)
    x, y, z = torch.meshgrid(lin, lin, lin, indexing="ij")
    p = torch.stack([x.reshape(-1), y.reshape(-1), z.reshape(-1)]) / spec.scale  # world → local
    janus = torch.full((p.shape[1],), spec.janus)
    sdf = (SHAPES[spec.shape].sdf(p, janus) * spec.scale).reshape(x.shape).numpy()
    verts, faces = mcubes.marching_cubes(-np.pad(sdf, 1, constant_values=1.0), 0.0)
    verts = (verts - 1.0) * (2 * r / resolution) - r
    return trimesh.Trimesh(verts, faces, process=True)


def load_asset(path: Path | str) -> trimesh.Trimesh:
    """An exported .glb as one mesh in the engine frame's axes (Z up; the file is Y up, in metres)."""
    scene = trimesh.load(str(path), force="scene", process=False)
    mesh = scene.to_geometry() if hasattr(scene, "to_geometry") else scene.dump(concatenate=True)
    y_up_to_z_up = np.linalg.inv(Z_UP_TO_Y_UP)
    mesh.apply_transform(y_up_to_z_up)
    return mesh


def _samples(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts), np.asarray(mesh.face_normals[face])


def _yaw(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rms_radius(p: np.ndarray) -> float:
    return float(np.sqrt(((p - p.mean(0)) ** 2).sum(1).mean()))


def score(
    asset: trimesh.Trimesh, truth: trimesh.Trimesh, n_samples: int = 20000, seed: int = 0
) -> GeometryScore:
    """Score ``asset`` against ``truth`` (both Z up), fitting the asset's yaw, scale and position."""
    topo = topology(asset)
    piece = largest_piece(asset)
    a_pts, a_nrm = _samples(piece, n_samples, seed)
    t_pts, t_nrm = _samples(truth, n_samples, seed + 1)
    diag = float(np.linalg.norm(truth.bounds[1] - truth.bounds[0]))
    t_tree = cKDTree(t_pts)
    # Normalise: centroids together, RMS radii equal; then only yaw and small corrections remain.
    a0 = a_pts - a_pts.mean(0)
    s0 = _rms_radius(t_pts) / max(_rms_radius(a_pts), 1e-12)
    c_t = t_pts.mean(0)
    fit = a0[:: max(1, n_samples // 2000)]
    t_fit = cKDTree(t_pts[:: max(1, n_samples // 2000)])

    def transform(x: np.ndarray, params: np.ndarray) -> np.ndarray:
        yaw, log_s, tx, ty, tz = params
        return (x @ _yaw(yaw).T) * (s0 * math.exp(log_s)) + c_t + np.array([tx, ty, tz])

    def chamfer(params: np.ndarray) -> float:
        moved = transform(fit, params)
        return float(t_fit.query(moved)[0].mean() + cKDTree(moved).query(t_fit.data)[0].mean())

    starts = [np.array([math.radians(d), 0.0, 0.0, 0.0, 0.0]) for d in range(0, 360, 15)]
    best = sorted(starts, key=chamfer)[:2]
    results = [minimize(chamfer, x0, method="Powell", options={"xtol": 1e-3, "ftol": 1e-6}) for x0 in best]
    params = min(results, key=lambda r: r.fun).x

    moved = transform(a0, params)
    moved_n = a_nrm @ _yaw(params[0]).T
    d_at, i_at = t_tree.query(moved)
    d_ta, i_ta = cKDTree(moved).query(t_pts)
    nc = 0.5 * (np.abs((moved_n * t_nrm[i_at]).sum(1)).mean() + np.abs((t_nrm * moved_n[i_ta]).sum(1)).mean())
    tau = FSCORE_TAU * diag
    p, r = float((d_at < tau).mean()), float((d_ta < tau).mean())
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return GeometryScore(
        chamfer=100.0 * 0.5 * (d_at.mean() + d_ta.mean()) / diag,
        normal_consistency=float(nc),
        fscore=float(f),
        pieces=topo.pieces,
        watertight=topo.watertight,
        genus=topo.genus,
        boundary_edges=topo.boundary_edges,
        nonmanifold_edges=topo.nonmanifold_edges,
        yaw=math.degrees(params[0]) % 360.0,
        scale=s0 * math.exp(params[1]),
    )


def expected_genus(spec: ObjectSpec) -> int:
    """The true shape's genus (the torus 1, every other world object 0)."""
    return 1 if spec.shape == "torus" else 0


__all__ = [
    "FSCORE_TAU",
    "GeometryScore",
    "Topology",
    "expected_genus",
    "largest_piece",
    "load_asset",
    "score",
    "topology",
    "true_mesh",
    "weld",
]
