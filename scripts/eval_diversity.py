"""Seed diversity with fixed vs resampled ε (LMC-SDS paper §4, "Increasing Sample Diversity").

    python scripts/eval_diversity.py "a red cube" --method lmc-sds --seeds 0,1,2,3 --work outputs/div \
        [--json outputs/div.json] [-- --steps 400 ...]

Runs the README's command (``python -m engine.generate PROMPT --seeds …``) twice — with
``--guidance.fixed-noise true`` and ``false`` — and prints, for each, the pairwise distances between the
seeds' exported assets:

* **image**: RMS difference of the 8-view turntables of the exported meshes (RGB in [0, 1]); it sees
  colour and silhouette.
* **chamfer**: symmetric Chamfer distance between 20k points sampled on the two meshes, in % of the
  scene box diagonal (2√3 m at the default export scale); it sees shape only.

Assets that differ "clearly" have larger off-diagonal values; the same seed twice gives 0 (runs are
deterministic per seed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def run(prompt: str, method: str, seeds: list[int], fixed: bool, out: Path, extra: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "engine.generate",
        prompt,
        "--out",
        str(out / "asset.glb"),
        "--method",
        method,
        "--seeds",
        ",".join(map(str, seeds)),
        "--guidance.fixed-noise",
        "true" if fixed else "false",
        "--quiet",
        *extra,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    return time.perf_counter() - t0


def turntable(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def surface_points(path: Path, n: int = 20000, seed: int = 0) -> np.ndarray:
    import trimesh

    mesh = trimesh.load(path, force="mesh")
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts)


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return 0.5 * (cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean())


def pairwise(out: Path, seeds: list[int], diag: float) -> dict[str, list[list[float]]]:
    assets = [out / f"asset_s{s}.glb" for s in seeds]
    imgs = [turntable(p.with_name(p.stem + "_turntable.png")) for p in assets]
    pts = [surface_points(p) for p in assets]
    n = len(seeds)
    img = np.zeros((n, n))
    cd = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        img[i, j] = img[j, i] = float(np.sqrt(((imgs[i] - imgs[j]) ** 2).mean()))
        cd[i, j] = cd[j, i] = 100.0 * chamfer(pts[i], pts[j]) / diag
    return {"image_rms": img.round(4).tolist(), "chamfer_pct": cd.round(3).tolist()}


def off_diagonal_mean(m: list[list[float]]) -> float:
    a = np.asarray(m)
    n = len(a)
    return float(a[~np.eye(n, dtype=bool)].mean())


def table(name: str, m: list[list[float]], seeds: list[int]) -> str:
    head = f"| {name} | " + " | ".join(f"s{s}" for s in seeds) + " |"
    rows = [head, "|" + "---|" * (len(seeds) + 1)]
    for s, row in zip(seeds, m):
        rows.append(f"| s{s} | " + " | ".join("–" if v == 0 else f"{v:.3f}" for v in row) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        k = argv.index("--")
        argv, extra = argv[:k], argv[k + 1 :]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prompt")
    p.add_argument("--method", default="lmc-sds")
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--work", type=Path, default=Path("outputs/diversity"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    diag = 2 * 3**0.5  # the scene box [-1, 1]^3 in metres (export default: 1 scene unit = 1 m)
    res: dict = {"prompt": args.prompt, "method": args.method, "seeds": seeds, "extra": extra, "runs": {}}
    for fixed in (True, False):
        out = args.work / ("fixed" if fixed else "resampled")
        secs = run(args.prompt, args.method, seeds, fixed, out, extra)
        d = pairwise(out, seeds, diag)
        d["wall_seconds"] = round(secs, 1)
        d["mean_image_rms"] = round(off_diagonal_mean(d["image_rms"]), 4)
        d["mean_chamfer_pct"] = round(off_diagonal_mean(d["chamfer_pct"]), 3)
        res["runs"]["fixed" if fixed else "resampled"] = d
        print(f"\n## ε {'fixed' if fixed else 'resampled'} ({secs:.0f} s for {len(seeds)} seeds)\n")
        print(table("image RMS", d["image_rms"], seeds))
        print()
        print(table("Chamfer %", d["chamfer_pct"], seeds))
        print(f"\nmean off-diagonal: image {d['mean_image_rms']:.4f}, Chamfer {d['mean_chamfer_pct']:.3f} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
