"""Import finished results into the scene with Blender's glTF importer, then place, name and tag them.

The new objects are found by diffing ``bpy.data.objects`` before and after each import (never by
selection), moved into a collection named for the prompt, placed (at the 3D cursor, standing on it, fitted
to a size, or on top of the active object; variants side by side), named ``<prompt> seed <seed>`` and
tagged with custom properties. Call it from an undoable operator (``text3d.import_results``): the operator
makes the one undo step, and the glTF importer called inside it adds none of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bpy
from mathutils import Euler, Vector

PROP_JOB_ID = "text3d_job_id"
PROP_PROMPT = "text3d_prompt"
PROP_METHOD = "text3d_method"
PROP_SEED = "text3d_seed"
PROP_VARIANT = "text3d_variant"

MAX_NAME = 63
"""Blender's longest ID name (bytes)."""


@dataclass
class ResultFile:
    """One downloaded variant."""

    path: Path
    seed: int
    variant: int = 0


@dataclass
class ImportOptions:
    """How results are placed (the add-on preferences' import options)."""

    at_cursor: bool = True
    """Place at the 3D cursor (else at the world origin)."""
    in_row: bool = True
    """Lay variants out side by side along X, centred on the placement point (else all at that point)."""
    parent_collection: str = ""
    """Put the prompt's collection inside this collection (created if missing; empty: the scene's)."""
    gap: float = 0.25
    """Space between variants in a row, as a fraction of the widest one."""
    drop_to_floor: bool = True
    """Stand each result on the placement point: its lowest point at the point's height."""
    fit_size: float = 0.0
    """Scale each result so its largest extent is this many metres (0: as generated, 1 unit = 1 m)."""
    align_to_active: bool = False
    """Place on top of the active object (centred on it, turned as it is about Z) instead of at the
    cursor; without an active object, the cursor as usual."""


def clip_name(text: str, suffix: str = "") -> str:
    """``text + suffix`` cut to Blender's name limit (the suffix is kept)."""
    room = MAX_NAME - len(suffix.encode("utf-8"))
    clipped = text.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip()
    return clipped + suffix


def import_results(
    files: list[ResultFile],
    *,
    job_id: str,
    prompt: str,
    method: str,
    options: ImportOptions | None = None,
    context: bpy.types.Context | None = None,
    keep_selection: bool = False,
) -> list[bpy.types.Object]:
    """Import the variants of one job; returns the new top-level objects (one per variant). The new
    objects are selected (the first active) unless ``keep_selection``: an automatic import leaves the
    artist's selection and active object as they were.

    Raises RuntimeError with a readable message if a file cannot be imported.
    """
    options = options or ImportOptions()
    context = context or bpy.context
    scene = context.scene
    view_layer = context.view_layer
    selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)] if view_layer else []
    active = view_layer.objects.active if view_layer is not None else None
    anchor = active if options.align_to_active and active is not None else None
    collection = _prompt_collection(scene, prompt, options.parent_collection)
    if anchor is not None:
        top = max((anchor.matrix_world @ Vector(c)).z for c in anchor.bound_box)
        origin = Vector((*anchor.matrix_world.translation.xy, top))
        turn = anchor.matrix_world.to_euler("XYZ").z
    else:
        origin = scene.cursor.location.copy() if options.at_cursor else Vector((0.0, 0.0, 0.0))
        turn = 0.0

    groups: list[tuple[list[bpy.types.Object], float]] = []
    for f in files:
        roots, everything = _import_one(f.path)
        name = clip_name(prompt, f" seed {f.seed}")
        for obj in everything:
            for c in list(obj.users_collection):
                c.objects.unlink(obj)
            collection.objects.link(obj)
            obj[PROP_JOB_ID] = job_id
            obj[PROP_PROMPT] = prompt
            obj[PROP_METHOD] = method
            obj[PROP_SEED] = int(f.seed)
            obj[PROP_VARIANT] = int(f.variant)
        for root in roots:
            root.name = name
            if root.type == "MESH" and root.data.users == 1:
                root.data.name = name
        _fit(roots, everything, options)
        groups.append((roots, _width(everything)))

    widths = [w for _, w in groups]
    gap = options.gap * max(widths, default=0.0)
    total = sum(widths) + gap * max(0, len(widths) - 1)
    x = -total / 2
    for roots, width in groups:
        offset = Vector((x + width / 2, 0.0, 0.0)) if options.in_row else Vector((0.0, 0.0, 0.0))
        offset.rotate(Euler((0.0, 0.0, turn)))
        for root in roots:
            root.location = root.location + origin + offset
            if turn:
                root.rotation_euler.z += turn
        x += width + gap

    new_roots = [r for roots, _ in groups for r in roots]
    if view_layer is not None:
        view_layer.update()  # world matrices at the new places for whatever runs next
    if keep_selection:
        _restore_selection(view_layer, selected, active)
    else:
        _select(context, new_roots)
    return new_roots


def _fit(roots: list[bpy.types.Object], everything: list[bpy.types.Object], options: ImportOptions) -> None:
    """Scale to ``fit_size`` and stand on z = 0 (the placement point is added afterwards)."""
    bpy.context.view_layer.update()
    corners = [o.matrix_world @ Vector(c) for o in everything for c in o.bound_box]
    if not corners:
        return
    lo = Vector(tuple(min(c[i] for c in corners) for i in range(3)))
    hi = Vector(tuple(max(c[i] for c in corners) for i in range(3)))
    extent = max(hi - lo)
    scale = options.fit_size / extent if options.fit_size > 0 and extent > 0 else 1.0
    for root in roots:
        root.scale = root.scale * scale
        root.location = root.location * scale
        if options.drop_to_floor:
            root.location.z -= lo.z * scale
    bpy.context.view_layer.update()  # the new matrices, for the row layout's widths


def _import_one(path: Path) -> tuple[list[bpy.types.Object], list[bpy.types.Object]]:
    """Run the glTF importer; (new top-level objects, every new object)."""
    if not Path(path).is_file():
        raise RuntimeError(f"the result file {path} is missing")
    before = set(bpy.data.objects)
    try:
        status = bpy.ops.import_scene.gltf(filepath=str(path))
    except RuntimeError as e:
        raise RuntimeError(f"Blender's glTF importer could not read {path}: {e}") from None
    if "FINISHED" not in status:
        raise RuntimeError(f"Blender's glTF importer did not import {path} ({', '.join(status)})")
    new = [o for o in bpy.data.objects if o not in before]
    if not new:
        raise RuntimeError(f"{path} contained no objects")
    new_set = set(new)
    roots = [o for o in new if o.parent not in new_set]
    return roots, new


def _width(objects: list[bpy.types.Object]) -> float:
    """Extent along world X of the objects' bounding boxes (1 m if they have none)."""
    xs = [(o.matrix_world @ Vector(corner)).x for o in objects for corner in o.bound_box]
    return (max(xs) - min(xs)) if xs and max(xs) > min(xs) else 1.0


def _prompt_collection(scene: bpy.types.Scene, prompt: str, parent_name: str) -> bpy.types.Collection:
    """The collection named for the prompt, linked into the scene (under ``parent_name`` if given)."""
    parent = scene.collection
    if parent_name:
        parent = bpy.data.collections.get(parent_name) or bpy.data.collections.new(parent_name)
        if parent not in scene.collection.children_recursive:
            scene.collection.children.link(parent)
    name = clip_name(prompt)
    coll = bpy.data.collections.get(name)
    if coll is None or coll.library is not None:
        coll = bpy.data.collections.new(name)
    if coll not in scene.collection.children_recursive:
        parent.children.link(coll)
    return coll


def _restore_selection(view_layer, selected: list[bpy.types.Object], active) -> None:
    """Put the selection and the active object back as they were before the import."""
    if view_layer is None:
        return
    keep = set(selected)
    for obj in view_layer.objects:
        want = obj in keep
        if obj.select_get(view_layer=view_layer) != want:
            obj.select_set(want, view_layer=view_layer)
    view_layer.objects.active = active if active is not None and active.name in view_layer.objects else None


def _select(context: bpy.types.Context, objects: list[bpy.types.Object]) -> None:
    view_layer = context.view_layer
    if view_layer is None:
        return
    for obj in view_layer.objects:
        if obj.select_get(view_layer=view_layer):
            obj.select_set(False, view_layer=view_layer)
    for obj in objects:
        if obj.name in view_layer.objects:
            obj.select_set(True, view_layer=view_layer)
    if objects and objects[0].name in view_layer.objects:
        view_layer.objects.active = objects[0]
