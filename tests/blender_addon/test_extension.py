"""The extension as Blender sees it: built and validated by Blender's own tool, installed through Blender's
extension system, registered, drawn, unregistered and registered again."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

from engine.config import PRESETS, preset_catalog
from engine.export.config import TEXTURE_SIZES
from engine.guidance import METHODS, method_catalog
from tests.blender_addon.conftest import REPO, free_port, run_session

ENGINE_HEALTH = {
    "methods": method_catalog(),
    "presets": preset_catalog(),
    "limits": {"texture_sizes": [s for s in TEXTURE_SIZES if s <= 4096]},
}
"""The parts of an engine's /v1/health answer the add-on's menus are built from."""

_spec = importlib.util.spec_from_file_location("build_extension", REPO / "scripts" / "build_extension.py")
build_extension = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_extension)

ADDON_MODULES = {p.name for p in (REPO / "blender_addon").glob("*.py")}


def test_zip_holds_the_addon_and_manifest_and_passes_blenders_validator(extension_zip: Path):
    assert extension_zip.name == "text3d-0.1.0.zip"
    names = set(zipfile.ZipFile(extension_zip).namelist())
    # Flat: __init__.py beside the manifest; the GPL text ships with the add-on (extensions.blender.org).
    assert names == ADDON_MODULES | {"blender_manifest.toml", "LICENSE"}, names
    manifest = tomllib.loads(zipfile.ZipFile(extension_zip).read("blender_manifest.toml").decode())
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"] and "<" in manifest["maintainer"]
    assert manifest["website"].startswith("https://") and "engine" in manifest["tagline"]
    assert "GNU GENERAL PUBLIC LICENSE" in zipfile.ZipFile(extension_zip).read("LICENSE").decode()[:200]
    tool, tags = build_extension.find_blender_ext()
    r = subprocess.run(
        [sys.executable, str(tool), "validate", str(extension_zip), f"--valid-tags={tags}"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Success" in r.stdout


def test_addon_imports_only_the_standard_library_and_bpy(tmp_path: Path):
    assert build_extension.non_stdlib_imports(REPO / "blender_addon") == []
    (tmp_path / "bad.py").write_text(
        "import json\nimport torch\nfrom engine.serve import app\nfrom . import x\n"
    )
    assert build_extension.non_stdlib_imports(tmp_path) == [
        "bad.py:2 imports torch",
        "bad.py:3 imports engine.serve",
    ]


def test_build_refuses_an_addon_that_imports_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "addon"
    fake.mkdir()
    (fake / "__init__.py").write_text("import torch\n")
    monkeypatch.setattr(build_extension, "ADDON_DIR", fake)
    with pytest.raises(SystemExit, match="__init__.py:1 imports torch"):
        build_extension.build(tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_install_enable_draw_unregister_register(extension_zip: Path, tmp_path: Path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    r = run_session(
        "install",
        {"zip": str(extension_zip), "url": url, "data_dir": str(tmp_path / "d"), "health": ENGINE_HEALTH},
        tmp_path,
    )

    assert r["enabled"] and r["addon_dir"].startswith(str(tmp_path / "blender_user" / "extensions"))
    assert all(r["classes"].values()), r["classes"]
    assert r["operators_poll"] == {"generate": True, "cancel": True}
    assert (r["panel_category"], r["panel_region"]) == ("Text3D", "UI")
    assert r["scene_settings"] and r["timer"]
    assert r["prefs"] == {
        "engine_url": "http://127.0.0.1:8765",
        "auto_start": True,
        "keep_engine": False,
        "place_at_cursor": True,
    }
    # Menus: the offline catalog until an engine answers, then exactly what its /v1/health lists.
    assert r["method_items_offline"] == ["sds"]
    assert list(r["method_items"]) == list(METHODS)
    assert "over-saturated" in r["method_items"]["sds"] and "Janus" in r["method_items"]["esd"]
    assert "λ = 0" in r["method_items"]["vsd"] and "Manifold Corrective" in r["method_items"]["lmc-sds"]
    assert r["preset_items"] == list(PRESETS) and "1024" in r["texture_items"]
    assert (r["method_default"], r["method_set"]) == ("sds", "esd")
    # The add-on writes only into its own user folder, never into the installed add-on.
    assert r["user_dir"].endswith("extensions/.user/user_default/text3d")
    assert r["addon_files_unchanged"]

    idle = r["draw_idle"]
    assert idle["problems"] == []
    assert any(label.startswith("Engine: Not running") for label in idle["labels"]), idle["labels"]
    assert {"prompt", "method", "preset", "seed", "variants", "noise"} <= set(idle["props"])
    assert {"guidance_scale", "steps", "lam", "texture_size", "prior", "extra_options"} <= set(idle["props"])
    assert "text3d.generate" in idle["operators"] and "text3d.start_engine" in idle["operators"]
    assert "No jobs yet" in idle["labels"]
    # No engine answers: the ways out, right in the panel (first run, or something to fix).
    assert {"text3d.open_preferences", "text3d.detect_python", "text3d.open_log"} <= set(idle["operators"])

    busy = r["draw_busy"]
    assert busy["problems"] == []
    assert "Engine: Crashed" in busy["labels"]
    assert any("[progress 0.40] Running 12/30, 42 s left" == label for label in busy["labels"]), busy[
        "labels"
    ]
    assert "text3d.show_message" in busy["operators"]  # long errors: a button shows the whole text
    assert "text3d.cancel:job_key=local-99" in busy["operators"]
    assert f"text3d.import_results:job_key={'d' * 32}" in busy["operators"]
    assert "Seed 1 · not from this Blender" in busy["labels"]
    assert f"text3d.remove_job:job_key={'d' * 32}" in busy["operators"]  # a finished job can be removed

    no_engine = r["generate_without_engine"]
    assert no_engine["result"] is None and "no engine answers at" in no_engine["error"]
    assert "auto-start is off" in no_engine["error"]
    assert "Type a prompt first" in r["generate_empty_prompt"]["error"]

    off = r["after_disable"]
    assert not any(off["classes"].values()), off["classes"]
    assert not off["scene_settings"] and not off["timer"] and not off["controller"]
    assert off["threads"] == []
    on = r["after_reenable"]
    assert all(on["classes"].values()) and on["scene_settings"] and on["timer"]
    assert on["new_controller"] and on["operators_poll"] and on["draw"]["problems"] == []
    assert r["after_second_disable_threads"] == []
