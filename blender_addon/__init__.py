"""Text-to-3D for Blender: a sidebar panel that sends prompts to the text-to-3D engine and imports the results.

This file only registers. The bpy-free core — ``client`` (HTTP + SSE), ``engine_process`` (start/stop a local
engine), ``supervisor`` (engine status), ``state`` and ``controller`` (jobs, the main-thread pump) — imports
without Blender, so the bpy layer (``properties``, ``operators``, ``ui``, ``preferences``, ``runtime``,
``importer``) is imported here only when Blender registers the add-on.
"""

from __future__ import annotations


def classes() -> tuple[type, ...]:
    """Every bpy class of the add-on, in registration order."""
    from . import operators, preferences, properties, ui

    return (*preferences.classes, *properties.classes, *operators.classes, *ui.classes)


def register() -> None:
    import bpy

    from . import properties, runtime

    for cls in classes():
        bpy.utils.register_class(cls)
    properties.attach()
    runtime.start()


def unregister() -> None:
    import bpy

    from . import properties, runtime

    runtime.stop()
    properties.detach()
    for cls in reversed(classes()):
        bpy.utils.unregister_class(cls)
