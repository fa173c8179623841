"""Export benchmark: per-step wall time and surface accuracy of ``export_asset`` at several grid resolutions.

    python scripts/bench_export.py                                    # the analytic snowman of tests/export
    python scripts/bench_export.py --checkpoint out_run/checkpoint.pt # a generated asset's field
    python scripts/bench_export.py --resolutions 128,160,192,256 --reference 320 --json export.json

Everything except the grid resolution is at its default (20k faces, 1024² texture, 8-view turntable).
Accuracy is the symmetric Chamfer distance (mean, scene units) between 50k points sampled on the exported
mesh and on a reference marching-cubes surface at ``--reference`` cells per axis, next to the voxel size.
Run with ``OMP_NUM_THREADS`` set to the threads you want to measure (the numbers in notes say which).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: engine/ and tests/

import numpy as np  # noqa: E402
import torch  # noqa: E402
import trimesh  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

import engine  # noqa: E402, F401
from engine.export import MeshExportConfig, export_asset  # noqa: E402
from engine.export.mesh import extract_mesh  # noqa: E402


def load_field(checkpoint: str | None):
    if checkpoint is None:
        from tests.export.fields import SpheresField

        return SpheresField(), "analytic snowman (tests/export/fields.py)"
    from engine.configbase import from_dict
    from engine.fields.nerf import FieldConfig

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    field = from_dict(FieldConfig, state["config"]["field"]).setup("cpu")
    field.load_state_dict(state["field"])
    field.eval()
    with torch.no_grad():  # compile/warm the encoding as a trained run's field already is
        field.density(torch.rand(1 << 16, 3) * 2 - 1)
    return field, f"checkpoint {checkpoint} (step {state['step']})"


def chamfer(a: trimesh.Trimesh, b: trimesh.Trimesh, n: int = 50000) -> float:
    pa = trimesh.sample.sample_surface(a, n, seed=0)[0]
    pb = trimesh.sample.sample_surface(b, n, seed=1)[0]
    return float((cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean()) / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="a run's checkpoint.pt (default: the analytic test field)")
    ap.add_argument("--resolutions", default="128,160,192,256")
    ap.add_argument(
        "--reference", type=int, default=320, help="grid of the reference surface (0: no accuracy)"
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    field, name = load_field(args.checkpoint)
    print(
        f"field: {name}; threads: {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"
    )
    ref = extract_mesh(field, MeshExportConfig(resolution=args.reference)) if args.reference else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in [int(r) for r in args.resolutions.split(",")]:
            t0 = time.perf_counter()
            r = export_asset(field, MeshExportConfig(resolution=res), Path(tmp) / f"r{res}.glb")
            total = time.perf_counter() - t0
            row = {
                "resolution": res,
                "total_s": round(total, 2),
                "seconds": r.to_dict()["seconds"],
                "faces": r.faces,
            }
            if ref is not None:
                (mesh,) = trimesh.load(r.paths["glb"]).geometry.values()
                # Back to the engine frame: undo the placement (the reference is in scene units).
                mesh.apply_transform(np.linalg.inv(r.placement.matrix()))
                row["chamfer"] = round(chamfer(mesh, ref), 5)
                row["voxel"] = round(2 * field.bound / res, 5)
            rows.append(row)
            print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps({"field": name, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
