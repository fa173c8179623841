"""``scripts/score_geometry.py``: scores an exported .glb against its prompt's true shape; bad input exits 2."""

import importlib.util
from pathlib import Path

import pytest

from engine.export import MeshExportConfig, export_asset
from tests.export.conftest import SMALL
from tests.export.fields import SpheresField

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("score_geometry", REPO / "scripts" / "score_geometry.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scores_an_exported_asset_and_refuses_bad_input(tmp_path, capsys):
    glb = export_asset(SpheresField(), MeshExportConfig(**SMALL), tmp_path / "snowman.glb").paths["glb"]
    mod = _script()
    md = tmp_path / "scores.md"
    (row,) = mod.main([str(glb), "a snowman", "--judge", "--validate", "--markdown", str(md)])
    assert (
        row["pieces"] == 1 and row["watertight"] and row["genus"] == 0
    )  # two spheres vs the world's snowman
    assert 0 <= row["views_ok"] <= 8 and len(row["verdicts"]) == 8
    assert (row["gltf_errors"], row["gltf_warnings"]) == (0, 0)
    table = md.read_text().splitlines()
    assert (
        table[0].startswith("| prompt | Chamfer %") and "glTF errors" in table[0] and "a snowman" in table[2]
    )
    assert 0.5 < row["normal_consistency"] <= 1.0 and 0 < row["chamfer"] < 5.0
    for bad in (["missing.glb", "a snowman"], [str(glb), "a dragon"], [str(glb)]):
        with pytest.raises(SystemExit) as e:
            mod.main(bad)
        assert e.value.code == 2
    err = capsys.readouterr().err
    assert "no asset at missing.glb" in err and "cannot read a world object" in err and "in pairs" in err
