"""Shared export fixtures: a small analytic field exported once per session with fast settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.export import ExportResult, MeshExportConfig, export_asset
from tests.export.fields import SpheresField

SMALL = dict(
    resolution=64,
    target_faces=4000,
    texture_size=256,
    uv_padding=4,
    turntable_views=4,
    turntable_size=64,
)
"""Fast settings for tests (~1 s); defaults are exercised by test_default_export_is_valid."""


@pytest.fixture(scope="session")
def snowman() -> SpheresField:
    return SpheresField()


@pytest.fixture(scope="session")
def small_export(snowman: SpheresField, tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    out: Path = tmp_path_factory.mktemp("small_export") / "snowman.glb"
    return export_asset(snowman, MeshExportConfig(**SMALL, write_obj=True), out)
