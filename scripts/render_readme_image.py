"""Make the README's "In Blender" picture: the headless path end to end, then a Cycles render of the result.

    python scripts/render_readme_image.py [--prompt "a yellow torus"] [--seeds 0,1,2] [--out docs/in_blender.png]
        [--blend SCENE.blend] [--samples 128] [--threads 2] [--python PY] [--engine-url URL]

1. ``scripts/generate.py`` makes the assets exactly as a user's headless run would (a fresh engine on a free
   port with a temporary data folder, unless ``--engine-url``), saving a temporary .blend — or ``--blend``
   reuses a .blend it made before;
2. that .blend is opened with the bpy module, a floor, a sun, a sky colour and a camera framing the assets
   are added, and Cycles renders it on the CPU (EEVEE needs a GPU context the bpy module does not have here).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(args: argparse.Namespace, blend: Path) -> None:
    cmd = [sys.executable, str(REPO / "scripts" / "generate.py"), "--", "--prompt", args.prompt]
    cmd += ["--seeds", args.seeds, "--preset", args.preset, "--empty", "--out", str(blend)]
    if args.engine_url:
        cmd += ["--engine-url", args.engine_url]
    else:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd += ["--engine-url", f"http://127.0.0.1:{port}", "--data-dir", str(blend.parent / "engine")]
    if args.python:
        cmd += ["--python", args.python]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def stage_and_render(blend: Path, out: Path, samples: int, threads: int, size: tuple[int, int]) -> None:
    import bpy
    from mathutils import Vector

    bpy.ops.wm.open_mainfile(filepath=str(blend))
    scene = bpy.context.scene
    assets = [o for o in scene.objects if "text3d_job_id" in o]
    if not assets:
        raise SystemExit(f"error: {blend} has no assets imported by the add-on")
    corners = [o.matrix_world @ Vector(c) for o in assets for c in o.bound_box]
    lo = Vector(min(c[i] for c in corners) for i in range(3))
    hi = Vector(max(c[i] for c in corners) for i in range(3))
    centre, extent = (lo + hi) / 2, hi - lo

    # Floor, light, sky.
    floor_mesh = bpy.data.meshes.new("Floor")
    r = 50.0
    floor_mesh.from_pydata([(-r, -r, 0), (r, -r, 0), (r, r, 0), (-r, r, 0)], [], [(0, 1, 2, 3)])
    floor = bpy.data.objects.new("Floor", floor_mesh)
    floor_mat = bpy.data.materials.new("Floor")
    if floor_mat.node_tree is None:  # Blender < 5 makes materials without nodes
        floor_mat.use_nodes = True
    bsdf = floor_mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = (0.5, 0.5, 0.48, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.9
    floor_mesh.materials.append(floor_mat)
    scene.collection.objects.link(floor)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy, sun.data.angle = 4.0, math.radians(15)
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(-35))
    scene.collection.objects.link(sun)
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    if world.node_tree is None:
        world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0.5, 0.57, 0.68, 1.0)
    background.inputs["Strength"].default_value = 0.45

    # A camera looking slightly down at the row, fitted to its width.
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    cam.data.lens = 50.0
    scene.collection.objects.link(cam)
    scene.camera = cam
    aspect = size[0] / size[1]
    half_fov = math.atan(cam.data.sensor_width / (2 * cam.data.lens))
    need = max(extent.x, extent.z * aspect * 1.6) * 0.5 * 1.25
    distance = need / math.tan(half_fov) + extent.y / 2
    tilt = math.radians(18)
    cam.location = centre + Vector((0.0, -distance * math.cos(tilt), distance * math.sin(tilt)))
    cam.rotation_euler = (centre - cam.location).to_track_quat("-Z", "Y").to_euler()

    render = scene.render
    render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False  # the bpy wheel has no denoiser: more samples instead
    render.threads_mode, render.threads = "FIXED", threads
    render.resolution_x, render.resolution_y, render.resolution_percentage = size[0], size[1], 100
    render.image_settings.file_format = "PNG"
    render.filepath = str(out.resolve())
    out.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.render.render(write_still=True)
    print(f"wrote {out} ({size[0]}×{size[1]}, {samples} samples) from {blend}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/render_readme_image.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--prompt", default="a yellow torus")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--preset", default="fast")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "in_blender.png")
    p.add_argument("--blend", type=Path, default=None, help="render this .blend instead of generating one")
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", default="960x400", help="WIDTHxHEIGHT (default 960x400)")
    p.add_argument("--python", default=None, help="interpreter for the engine (see scripts/generate.py)")
    p.add_argument("--engine-url", default=None, help="use this engine instead of starting a fresh one")
    args = p.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.blend is not None:
        stage_and_render(args.blend, args.out, args.samples, args.threads, size)
        return 0
    with tempfile.TemporaryDirectory(prefix="text3d-readme-") as tmp:
        blend = Path(tmp) / "scene.blend"
        generate(args, blend)
        stage_and_render(blend, args.out, args.samples, args.threads, size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
