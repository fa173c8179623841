"""Every .glb the engine writes passes the Khronos glTF-Validator with no errors (and no warnings)."""

from engine.export import MeshExportConfig, export_asset
from engine.export.mesh import extract_mesh, write_glb
from tests.export.gltf_validator import errors_and_warnings, validated


def _check(path) -> dict:
    report = validated(path)
    assert report["issues"]["numWarnings"] == 0, errors_and_warnings(report)
    return report


def test_small_export_is_valid(small_export):
    info = _check(small_export.paths["glb"])["info"]
    assert info["hasTextures"] and info["materialCount"] == 1 and info["maxUVs"] == 1
    assert info["totalTriangleCount"] == small_export.n_faces


def test_default_export_is_valid(snowman, tmp_path):
    """Default settings (grid 160³, ~20k faces, 1024² texture) on the analytic snowman."""
    result = export_asset(snowman, MeshExportConfig(), tmp_path / "default.glb")
    info = _check(result.paths["glb"])["info"]
    assert info["resources"][1]["image"]["width"] == 1024
    assert 19000 <= info["totalTriangleCount"] <= 20000


def test_plain_mesh_writer_is_valid(snowman, tmp_path):
    write_glb(extract_mesh(snowman, MeshExportConfig(resolution=32)), tmp_path / "plain.glb")
    _check(tmp_path / "plain.glb")
