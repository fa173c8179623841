"""Field → textured mesh → .glb, on the CPU (see ``pipeline.py`` for the steps and the files written)."""

from engine.export.config import MeshExportConfig
from engine.export.mesh import EmptySurfaceError
from engine.export.pipeline import ExportResult, export_asset

__all__ = ["EmptySurfaceError", "ExportResult", "MeshExportConfig", "export_asset"]
