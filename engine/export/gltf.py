"""Step 7 of the export: placement in real-world units, the .glb (and optional .obj/.mtl) writers, atomic files.

Files are Y-up in metres (glTF 2.0 specification, "Coordinate System and Units"). The engine is Z-up with the front
facing −Y, so the writers map (x, y, z) → (x, z, −y); Blender's glTF and OBJ importers map it back, and the
object's front then faces Blender's −Y ("Front" view). The material is a PBR metallic-roughness material with
the baked albedo as baseColorTexture, metallic 0 and a high roughness: Blender's importer feeds the Principled
BSDF's Base Color from an Image Texture node, which Material Preview, Rendered and Solid (Color: Texture) show.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

from engine.atomic import write_all

# Engine (Z-up) → glTF (Y-up).
Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)

# glTF enums (WebGL): sampler filters and wrapping; bufferView targets for vertex and index data.
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP_TO_EDGE = 9729, 9987, 33071
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass
class Placement:
    """Where the engine's object lands in the file: p_file = Z_UP_TO_Y_UP · (scale · (p_engine − origin))."""

    origin: tuple[float, float, float]
    """Engine-frame point that becomes the file's origin."""
    scale: float
    """Metres per scene unit."""

    def engine_to_world(self) -> np.ndarray:
        """4×4 engine frame → Blender world (Z-up, metres): scale · (p − origin)."""
        m = np.eye(4) * self.scale
        m[3, 3] = 1.0
        m[:3, 3] = -self.scale * np.asarray(self.origin)
        return m

    def matrix(self) -> np.ndarray:
        """4×4 engine frame → file (glTF, Y-up, metres)."""
        return Z_UP_TO_Y_UP @ self.engine_to_world()

    def to_dict(self) -> dict:
        return {
            "origin": [float(v) for v in self.origin],
            "scale": float(self.scale),
            "units": "metres",
            "up": "+Y in the file (glTF); +Z in Blender after import",
            "engine_to_file": self.matrix().round(9).tolist(),
        }


def place(vertices: np.ndarray, placement: str, height: float | None) -> Placement:
    """The placement of an engine-frame point set (see ``MeshExportConfig.placement`` / ``height``)."""
    lo, hi = vertices.min(0), vertices.max(0)
    if placement == "ground":
        origin = ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2])
    elif placement == "center":
        origin = tuple((lo + hi) / 2)
    else:
        origin = (0.0, 0.0, 0.0)
    extent = float(hi[2] - lo[2])
    scale = 1.0 if height is None or extent <= 0 else height / extent
    return Placement(tuple(float(v) for v in origin), float(scale))


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, then rename: a crash never leaves half a file."""
    write_all({Path(path): data})


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _finish_tree(tree: dict, name: str) -> None:
    """What trimesh leaves out: a texture sampler (trilinear, clamped), bufferView targets, image names."""
    views = tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for acc in prim.get("attributes", {}).values():
                view = tree["accessors"][acc].get("bufferView")
                if view is not None:
                    views[view]["target"] = _ARRAY_BUFFER
            if "indices" in prim:
                view = tree["accessors"][prim["indices"]].get("bufferView")
                if view is not None:
                    views[view]["target"] = _ELEMENT_ARRAY_BUFFER
    if tree.get("textures"):
        tree["samplers"] = [
            {
                "magFilter": _LINEAR,
                "minFilter": _LINEAR_MIPMAP_LINEAR,
                "wrapS": _CLAMP_TO_EDGE,
                "wrapT": _CLAMP_TO_EDGE,
            }
        ]
        for tex in tree["textures"]:
            tex["sampler"] = 0
    for i, image in enumerate(tree.get("images", [])):
        image["name"] = f"{name}_texture" if i == 0 else f"{name}_texture_{i}"
    tree.setdefault("asset", {})["generator"] = "text3d-engine (trimesh)"


def textured_mesh(
    positions: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
    texture: np.ndarray,
    roughness: float,
    name: str = "asset",
) -> trimesh.Trimesh:
    """A trimesh with UVs (v up, trimesh's convention) and a PBR material; positions/normals as given."""
    material = trimesh.visual.material.PBRMaterial(
        name=f"{name}_material",
        baseColorTexture=Image.fromarray(texture),
        baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0,
        roughnessFactor=float(roughness),
        doubleSided=False,
    )
    mesh = trimesh.Trimesh(
        vertices=positions, faces=faces, vertex_normals=normals, process=False, validate=False
    )
    mesh.visual = trimesh.visual.TextureVisuals(uv=uvs, material=material)
    mesh.metadata["name"] = name
    return mesh


def glb_bytes(mesh: trimesh.Trimesh, name: str = "asset") -> bytes:
    """Binary glTF of a mesh that is already in the file frame (Y-up), with normals."""
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=name, geom_name=name)
    return trimesh.exchange.gltf.export_glb(
        scene, include_normals=True, tree_postprocessor=functools.partial(_finish_tree, name=name)
    )


def write_glb(mesh: trimesh.Trimesh, path: Path) -> None:
    """Write a Y-up binary glTF of an engine-frame mesh as it is (scene units, no placement)."""
    out = mesh.copy()
    out.apply_transform(Z_UP_TO_Y_UP)
    atomic_write(Path(path), glb_bytes(out))


def obj_files(
    positions: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    uvs: np.ndarray,
    stem: str,
    texture_name: str,
) -> tuple[bytes, bytes]:
    """(.obj, .mtl) text of a file-frame mesh; the .mtl points at ``texture_name`` beside it."""

    def rows(prefix: str, a: np.ndarray) -> str:
        fmt = prefix + " " + " ".join(["%.6f"] * a.shape[1])
        return "\n".join(fmt % tuple(r) for r in a.tolist())

    f1 = faces + 1
    face_lines = "\n".join(f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in f1.tolist())
    obj = "\n".join(
        [
            "# text3d-engine export: Y-up, metres",
            f"mtllib {stem}.mtl",
            f"o {stem}",
            rows("v", positions),
            rows("vt", uvs),
            rows("vn", normals),
            f"usemtl {stem}_material",
            "s 1",
            face_lines,
            "",
        ]
    )
    mtl = "\n".join(
        [
            f"newmtl {stem}_material",
            "Ka 1.000 1.000 1.000",
            "Kd 1.000 1.000 1.000",
            "Ks 0.000 0.000 0.000",
            "Ns 10.0",
            "illum 1",
            f"map_Kd {texture_name}",
            "",
        ]
    )
    return obj.encode(), mtl.encode()
