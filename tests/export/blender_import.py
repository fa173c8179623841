"""Run in a fresh process: import a .glb with Blender's own glTF importer (bpy) and report what landed.

``python tests/export/blender_import.py FILE.glb`` prints one JSON object on the last line of stdout: the
objects, the mesh's UV layers, how the material's Principled BSDF Base Color is fed, and per-loop world
positions with the texture colour Blender would sample there (nearest texel at the loop's UV).
"""

import json
import sys

import bpy
import numpy as np


def main(path: str) -> dict:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=path)
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    report: dict = {"objects": [o.name for o in bpy.data.objects], "meshes": len(meshes)}
    if len(meshes) != 1:
        return report
    obj = meshes[0]
    me = obj.data
    report["faces"] = len(me.polygons)
    report["uv_layers"] = [u.name for u in me.uv_layers]
    mat = me.materials[0] if me.materials else None
    report["material"] = mat.name if mat else None
    if mat is None or not mat.use_nodes:
        return report
    bsdf = next((n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
    if bsdf is None:
        return report
    report["metallic"] = bsdf.inputs["Metallic"].default_value
    report["roughness"] = bsdf.inputs["Roughness"].default_value
    links = bsdf.inputs["Base Color"].links
    feeder = links[0].from_node if links else None
    report["base_color_from"] = feeder.bl_idname if feeder else None
    image = getattr(feeder, "image", None)
    if image is None:
        return report
    report["image"] = {
        "name": image.name,
        "size": list(image.size),
        "colorspace": image.colorspace_settings.name,
    }
    w, h = image.size
    pixels = np.empty(w * h * image.channels, np.float32)
    image.pixels.foreach_get(pixels)
    pixels = pixels.reshape(h, w, image.channels)[..., :3]  # row 0 is the bottom of the image in Blender
    n_loops = len(me.loops)
    uv = np.empty(n_loops * 2, np.float32)
    me.uv_layers.active.data.foreach_get("uv", uv)
    uv = uv.reshape(-1, 2)
    vidx = np.empty(n_loops, np.int64)
    me.loops.foreach_get("vertex_index", vidx)
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    mw = np.array(obj.matrix_world)
    world = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
    px = np.clip((uv[:, 0] * w).astype(np.int64), 0, w - 1)
    py = np.clip((uv[:, 1] * h).astype(np.int64), 0, h - 1)
    report["loops"] = {"world": world[vidx].tolist(), "color": pixels[py, px].tolist()}
    report["bounds"] = {"min": world.min(0).tolist(), "max": world.max(0).tolist()}
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
