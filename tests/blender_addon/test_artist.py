"""The add-on in an artist's hands (real bpy, pumped as the add-on's timer would be): previews that never go
stale, a new seed per Generate, automatic imports that wait for a safe moment, keep the artist's selection,
never land in another file and are one undo step each."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
import trimesh
from PIL import Image

from engine.export.gltf import write_glb
from tests.blender_addon.conftest import free_port, run_session


def solid_png(rgb: tuple[int, int, int], size: int = 8) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def artist(extension_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("artist")
    glbs = []
    for k, extent in enumerate((0.6, 1.0)):  # two variants of different sizes, standing below z = 0
        box = trimesh.creation.box(extents=(extent, extent, extent))
        box.apply_translation((0.0, 0.0, -0.3))
        write_glb(box, tmp / f"variant_{k}.glb")
        glbs.append(str(tmp / f"variant_{k}.glb"))
    params = {
        "zip": str(extension_zip),
        "url": f"http://127.0.0.1:{free_port()}",  # nothing answers there
        "data_dir": str(tmp / "engine_data"),
        "options": "",
        "glbs": glbs,
        "pngs": [solid_png((255, 0, 0)), solid_png((0, 255, 0))],
    }
    return run_session("artist", params, tmp)


def test_consecutive_previews_of_one_size_are_each_shown(artist):
    first, second = artist["preview_1"], artist["preview_2"]
    assert first["mean_rgb"] == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    assert second["mean_rgb"] == pytest.approx(
        [0.0, 1.0, 0.0], abs=0.01
    )  # the new pixels, not a cached frame
    assert first["file"] != second["file"]  # a new file per preview …
    assert artist["preview_files_left"] == [Path(second["file"]).name]  # … and only the newest is kept


def test_random_and_next_seed_modes_make_a_new_asset_per_generate(artist):
    seeds = artist["seeds"]
    assert len(set(seeds["random"])) == 3
    assert seeds["increment"] == [5, 7] and seeds["after"] == 9  # two variants per press: 5, 6 then 7, 8
    assert seeds["fixed"][0] == seeds["fixed"][1]


def test_auto_import_waits_for_a_render_and_keeps_the_selection(artist):
    assert artist["while_rendering"]["tagged"] == 0 and "render" in artist["while_rendering"]["note"]
    imp = artist["imported"]
    assert imp["imported"] == 1 and imp["tagged_roots"] == ["a red cube seed 0", "a red cube seed 1"]
    assert "Marker" in imp["selected_before"]
    assert imp["selected"] == imp["selected_before"] and imp["active"] == "Marker"  # the artist's, untouched
    assert imp["lowest_z"] == pytest.approx(0.0, abs=1e-4)  # stood on the floor at the cursor
    assert artist["draw"]["problems"] == []


def test_one_undo_removes_the_whole_import_and_nothing_else(artist):
    assert artist["after_one_undo"] == {"tagged": 0, "marker": True}
    assert artist["after_two_undos"] == {"tagged": 0, "marker": False}  # the step before was the marker's


def test_a_job_finishing_after_another_file_was_opened_waits_for_the_import_button(artist):
    other = artist["other_file"]
    assert other["tagged"] == 0 and "another file" in other["note"] and not other["pending"]
    assert artist["manual_import"]["error"] is None
    assert artist["after_manual_import"] == ["a blue sphere seed 0"]
    assert artist["draw_after"]["problems"] == []
