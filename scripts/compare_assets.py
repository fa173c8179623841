"""Do two .glb assets hold the same mesh, within a tolerance? For refactors that must not change results.

    python scripts/compare_assets.py BEFORE.glb AFTER.glb [--tolerance 0.005]
    python scripts/compare_assets.py BEFORE_DIR AFTER_DIR      # every */asset.glb present in both

Compares the meshes as they were written (no pose fitting): vertex and face counts, the symmetric Chamfer
distance (mean of nearest-point distances both ways between 20 000 surface samples) as a fraction of the
bounding-box diagonal, and the mean absolute difference of the baked textures (``*_texture.png`` beside
the .glb, 0–1 scale) when both have one. Float results may differ slightly between CPU models, so a hash
would be the wrong test. Exit 1 if the Chamfer of any pair exceeds ``--tolerance`` or its texture
difference exceeds ``--texture-tolerance``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.evaluation.geometry import load_asset  # noqa: E402


def chamfer_fraction(a, b, n: int = 20000, seed: int = 0) -> float:
    """Symmetric Chamfer distance between two meshes as a fraction of ``a``'s bounding-box diagonal."""
    from scipy.spatial import cKDTree

    pa = np.asarray(a.sample(n, seed=seed))
    pb = np.asarray(b.sample(n, seed=seed))  # the same draws: identical meshes score exactly 0
    d = 0.5 * (cKDTree(pb).query(pa)[0].mean() + cKDTree(pa).query(pb)[0].mean())
    return float(d / np.linalg.norm(a.bounds[1] - a.bounds[0]))


def texture_difference(a_glb: Path, b_glb: Path) -> float | None:
    """Mean absolute RGB difference (0–1) of the textures baked beside two assets; None if one lacks it."""
    from PIL import Image

    ta, tb = (p.with_name(p.stem + "_texture.png") for p in (a_glb, b_glb))
    if not (ta.is_file() and tb.is_file()):
        return None
    a = np.asarray(Image.open(ta).convert("RGB"), dtype=np.float32) / 255.0
    b = np.asarray(Image.open(tb).convert("RGB"), dtype=np.float32) / 255.0
    return float(np.abs(a - b).mean()) if a.shape == b.shape else 1.0


def pairs(before: Path, after: Path) -> list[tuple[str, Path, Path]]:
    if before.is_file():
        return [(before.name, before, after)]
    out = []
    for glb in sorted(before.rglob("*.glb")):
        other = after / glb.relative_to(before)
        if other.is_file():
            out.append((str(glb.relative_to(before)), glb, other))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--tolerance", type=float, default=0.005, help="largest Chamfer fraction allowed")
    p.add_argument(
        "--texture-tolerance", type=float, default=0.01, help="largest mean texture difference allowed (0-1)"
    )
    args = p.parse_args(argv)
    found = pairs(args.before, args.after)
    if not found:
        print(f"error: no .glb in both {args.before} and {args.after}", file=sys.stderr)
        return 2
    worst, worst_tex = 0.0, 0.0
    print(f"{'asset':28s} {'vertices':>15s} {'faces':>15s} {'chamfer':>9s} {'texture':>8s}")
    for name, a_path, b_path in found:
        a, b = load_asset(a_path), load_asset(b_path)
        c, t = chamfer_fraction(a, b), texture_difference(a_path, b_path)
        worst, worst_tex = max(worst, c), max(worst_tex, t or 0.0)
        shown = "-" if t is None else f"{t:.4f}"
        print(
            f"{name:28s} {len(a.vertices):>7d}/{len(b.vertices):<7d} {len(a.faces):>7d}/{len(b.faces):<7d} "
            f"{100 * c:8.3f}% {shown:>8s}"
        )
    ok = worst <= args.tolerance and worst_tex <= args.texture_tolerance
    print(
        f"largest Chamfer {100 * worst:.3f}% of the diagonal, largest texture difference {worst_tex:.4f}: "
        f"{'same' if ok else 'DIFFERENT'} (tolerances {100 * args.tolerance:.2f}%, {args.texture_tolerance})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
