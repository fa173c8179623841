"""export_asset: files, result record, placement in metres, and nothing half-written on errors."""

import dataclasses
import json

import numpy as np
import pytest
import trimesh

import engine.export.pipeline as pipeline
from engine.export import EmptySurfaceError, MeshExportConfig, export_asset
from tests.export.conftest import SMALL
from tests.export.fields import ConstantField


def test_files_and_record(small_export):
    r = small_export
    assert set(r.paths) == {"glb", "texture", "turntable", "obj", "mtl"}
    for p in r.paths.values():
        assert p.exists() and p.stat().st_size > 0
    assert r.paths["glb"].read_bytes()[:4] == b"glTF"
    assert (
        r.paths["texture"].name == "snowman_texture.png"
        and r.paths["turntable"].name == "snowman_turntable.png"
    )
    assert list(r.seconds) == [
        "grid", "iso", "solid", "marching_cubes", "cleanup", "decimate", "uv", "bake", "encode", "turntable", "write"
    ]  # fmt: skip
    assert r.faces["decimate"] == r.n_faces <= SMALL["target_faces"] < r.faces["marching_cubes"]
    d = json.loads(json.dumps(r.to_dict()))
    assert d["placement"]["units"] == "metres" and d["iso_auto"] is True
    assert not list(r.paths["glb"].parent.glob(".*.tmp"))


def test_obj_references_the_texture(small_export):
    mtl = small_export.paths["mtl"].read_text()
    obj = small_export.paths["obj"].read_text()
    assert "map_Kd snowman_texture.png" in mtl and "mtllib snowman.mtl" in obj
    assert obj.count("\nf ") == small_export.n_faces


def test_default_placement_stands_on_the_ground_in_y_up_metres(small_export, snowman):
    scene = trimesh.load(small_export.paths["glb"])
    (mesh,) = scene.geometry.values()
    lo, hi = mesh.bounds
    assert lo[1] == pytest.approx(0.0, abs=1e-6)  # glTF +Y is up: lowest point on the floor
    assert (lo[0] + hi[0]) / 2 == pytest.approx(0.0, abs=1e-6) and (lo[2] + hi[2]) / 2 == pytest.approx(
        0.0, abs=1e-6
    )
    assert hi[1] == pytest.approx(0.55 + 0.65, abs=0.1)  # the snowman spans z = −0.65 … 0.55: 1 unit = 1 m
    # The recorded matrix maps the recorded origin (engine frame) to the file's origin.
    m = small_export.placement.matrix()
    np.testing.assert_allclose(m @ [*small_export.placement.origin, 1.0], [0, 0, 0, 1], atol=1e-9)
    assert isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.uv is not None


def test_height_scales_to_metres(snowman, tmp_path):
    cfg = MeshExportConfig(**{**SMALL, "turntable_views": 0}, height=2.0, placement="center")
    r = export_asset(snowman, cfg, tmp_path / "tall.glb")
    (mesh,) = trimesh.load(r.paths["glb"]).geometry.values()
    assert mesh.extents[1] == pytest.approx(2.0, rel=1e-4)
    assert mesh.bounds.mean(0) == pytest.approx([0, 0, 0], abs=1e-5)
    assert "turntable" not in r.paths and not (tmp_path / "tall_turntable.png").exists()


def test_a_failing_step_writes_nothing(snowman, tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("bake failed")

    monkeypatch.setattr(pipeline, "bake_texture", broken)
    with pytest.raises(RuntimeError, match="bake failed"):
        export_asset(snowman, MeshExportConfig(**SMALL), tmp_path / "a.glb")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_write_leaves_no_partial_files(snowman, tmp_path, monkeypatch):
    real = pipeline.write_all

    def fail_on_rename(files):
        import os

        calls = []
        orig = os.replace

        def replace(src, dst):
            calls.append(dst)
            if len(calls) == 2:
                raise OSError("disk full")
            return orig(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        return real(files)

    monkeypatch.setattr(pipeline, "write_all", fail_on_rename)
    with pytest.raises(OSError, match="disk full"):
        export_asset(snowman, MeshExportConfig(**SMALL), tmp_path / "a.glb")
    assert not list(tmp_path.glob(".*.tmp"))  # complete files may have landed, never a partial one


@pytest.mark.parametrize(
    "field,change,error,needle",
    [
        (ConstantField(0.0), {}, EmptySurfaceError, "transparent"),
        (ConstantField(80.0), {}, EmptySurfaceError, "fills the whole scene box"),
        (None, {"texture_size": 1000}, ValueError, "power of two"),
        (None, {"resolution": 100000}, ValueError, "lower --export.resolution"),
    ],
)
def test_bad_settings_fail_clearly_and_write_nothing(snowman, tmp_path, field, change, error, needle):
    cfg = dataclasses.replace(MeshExportConfig(**SMALL), **change)
    with pytest.raises(error, match=needle):
        export_asset(field or snowman, cfg, tmp_path / "x.glb")
    assert list(tmp_path.iterdir()) == []


def test_out_path_must_be_a_glb(snowman, tmp_path):
    with pytest.raises(ValueError, match="must end in .glb"):
        export_asset(snowman, MeshExportConfig(**SMALL), tmp_path / "x.gltf")
