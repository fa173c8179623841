"""MeshExportConfig: every setting documented, bad values refused with a message naming the setting."""

import dataclasses

import pytest

from engine.configbase import field_docs
from engine.export import MeshExportConfig


def test_every_field_has_a_docstring():
    docs = field_docs(MeshExportConfig)
    assert {f.name for f in dataclasses.fields(MeshExportConfig)} == set(docs)
    assert all(docs.values())
    assert not any("%" in d for d in docs.values())  # argparse would try to format it in --help


def test_defaults_are_valid():
    cfg = MeshExportConfig()
    cfg.validate()
    assert cfg.target_faces == 20000 and cfg.texture_size == 1024


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"texture_size": 1000}, "texture_size must be a power of two"),
        ({"texture_size": 16384}, "texture_size must be a power of two"),
        ({"resolution": 4}, "resolution must be >= 16"),
        ({"iso_density": -1.0}, "iso_density must be > 0"),
        ({"iso_opacity": 1.0}, r"iso_opacity must be in \(0, 1\)"),
        ({"target_faces": 10}, "target_faces"),
        ({"uv_padding": 0}, "uv_padding"),
        ({"placement": "floor"}, "placement must be one of ground, center, scene"),
        ({"height": 0.0}, "height must be > 0"),
        ({"roughness": 2.0}, "roughness"),
        ({"min_component": 1.0}, "min_component"),
        ({"turntable_size": 8}, "turntable"),
    ],
)
def test_bad_settings_name_the_setting(change, needle):
    with pytest.raises(ValueError, match=needle):
        dataclasses.replace(MeshExportConfig(), **change).validate()
