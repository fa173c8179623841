"""Build the Blender extension: ``python scripts/build_extension.py`` → ``dist/<id>-<version>.zip``.

The zip holds ``blender_addon/`` (stdlib-only Python: no torch, no wheels) with the repo root's
``blender_manifest.toml`` beside its ``__init__.py``. Blender's builder and validator expect exactly that
layout, and the manifest belongs at the repo root, so both are staged into a temporary folder and built
there with Blender's own tool, ``blender_ext.py build`` (shipped inside the bpy wheel, the same code as
``blender --command extension build``), with Blender's list of valid tags; the zip is then checked with
``blender_ext.py validate``. Install it with Blender ▸ Preferences ▸ Get Extensions ▸ Install from Disk.

Flags: ``--out DIR`` (default ``dist/``), ``--blender-ext PATH`` (another ``blender_ext.py``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
ADDON_DIR = REPO / "blender_addon"
MANIFEST = REPO / "blender_manifest.toml"
ALLOWED_MODULES = frozenset({"bpy", "bpy_extras", "mathutils", "addon_utils"})
"""Modules Blender provides besides the standard library."""
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def find_blender_ext() -> tuple[Path, Path | None]:
    """Blender's extension tool and its valid-tags file, from the installed bpy wheel (found without
    importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "error: cannot find Blender's extension tool: the bpy wheel is not installed in this Python "
            "(pip install bpy, or pass --blender-ext PATH/TO/blender_ext.py)"
        )
    for root in map(Path, spec.submodule_search_locations):
        for tool in sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py")):
            tags = tool.parents[3] / "modules" / "_bpy_internal" / "extensions" / "tags.py"
            return tool, tags if tags.is_file() else None
    raise SystemExit("error: the bpy wheel has no scripts/addons_core/bl_pkg/cli/blender_ext.py")


def non_stdlib_imports(folder: Path) -> list[str]:
    """``file:line module`` for every absolute import in ``folder``'s .py files that is neither the standard
    library nor provided by Blender (the add-on must run in Blender's bundled Python as it is)."""
    problems = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ALLOWED_MODULES and top != "__future__":
                    problems.append(f"{path.relative_to(folder)}:{node.lineno} imports {name}")
    return problems


def stage(dest: Path) -> dict:
    """Copy the add-on and the manifest into ``dest``; returns the manifest."""
    shutil.copytree(ADDON_DIR, dest, ignore=SKIP)
    shutil.copy2(MANIFEST, dest / MANIFEST.name)
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)


def run_tool(tool: Path, args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(tool), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    out = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise SystemExit(f"error: blender_ext.py {args[0]} failed (exit {proc.returncode}):\n{out}")
    if out:
        print(out)


def build(out_dir: Path, tool: Path | None = None) -> Path:
    """Build and validate the extension zip; returns its path."""
    tool, tags = (tool, None) if tool is not None else find_blender_ext()
    problems = non_stdlib_imports(ADDON_DIR)
    if problems:
        raise SystemExit(
            "error: the add-on must use only the standard library and bpy:\n" + "\n".join(problems)
        )
    tag_args = [f"--valid-tags={tags}"] if tags else []
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="text3d-ext-") as tmp:
        src = Path(tmp) / "text3d"
        manifest = stage(src)
        zip_path = out_dir.resolve() / f"{manifest['id']}-{manifest['version']}.zip"
        zip_path.unlink(missing_ok=True)
        run_tool(tool, ["build", "--source-dir", str(src), "--output-filepath", str(zip_path), *tag_args])
    run_tool(tool, ["validate", str(zip_path), *tag_args])
    return zip_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/build_extension.py", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default dist/)")
    p.add_argument("--blender-ext", type=Path, default=None, help="path to Blender's blender_ext.py")
    args = p.parse_args(argv)
    zip_path = build(args.out, args.blender_ext)
    print(f"built and validated {zip_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
