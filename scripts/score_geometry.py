"""Score exported assets against the world's true shapes (the geometry suite's metrics, for any .glb).

    python scripts/score_geometry.py red_cube.glb "a red cube" [green_cone.glb "a green cone" ...]
        [--judge] [--validate] [--json out.json] [--markdown out.md]

Per asset: Chamfer (% of the true bounding-box diagonal), normal consistency, F-score at 2 %, pieces,
watertight, genus of the largest piece, with yaw, position and scale fitted (``engine/evaluation/geometry.py``);
with ``--judge`` the judge's reading of the mesh from 8 views (``views_ok``: class and colour right), with
``--validate`` the Khronos glTF-Validator's error and warning counts (Node.js needed; ``make test`` installs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # engine, and tests for the validator

from engine.cli import OneLineParser  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="ASSET.glb PROMPT, repeated")
    parser.add_argument("--judge", action="store_true", help="also judge the mesh from 8 views")
    parser.add_argument("--validate", action="store_true", help="also run the Khronos glTF-Validator")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("--markdown", type=Path, help="also write a markdown table to this file")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give the assets and prompts in pairs: ASSET.glb PROMPT [ASSET.glb PROMPT ...]")
    from engine.evaluation.geometry import load_asset, score, true_mesh
    from engine.evaluation.views import spec_for_prompt

    judge = None
    if args.judge:
        from engine.judge import load_judge

        judge = load_judge()
    out = []
    for glb, prompt in zip(args.pairs[::2], args.pairs[1::2]):
        if not Path(glb).is_file():
            parser.error(f"no asset at {glb}: give the path of an exported .glb")
        try:
            truth = true_mesh(spec_for_prompt(prompt))
        except ValueError as e:
            parser.error(str(e))
        s = score(load_asset(glb), truth)
        row = {"asset": glb, "prompt": prompt, **s.to_dict()}
        extra = ""
        if judge is not None:
            from engine.evaluation.views import asset_views
            from engine.judge import judge_images

            obj = spec_for_prompt(prompt)
            verdicts = judge_images(judge, asset_views(glb))
            row["views_ok"] = sum(v.cls == obj.shape and v.colour == obj.colour for v in verdicts)
            row["verdicts"] = [f"{v.colour} {v.cls}" for v in verdicts]
            extra += f", judged right in {row['views_ok']}/8 views"
        if args.validate:
            from tests.export.gltf_validator import validate

            issues = validate(glb)["issues"]
            row["gltf_errors"], row["gltf_warnings"] = int(issues["numErrors"]), int(issues["numWarnings"])
            extra += f", glTF-Validator {row['gltf_errors']} errors / {row['gltf_warnings']} warnings"
        out.append(row)
        print(
            f"{glb}: Chamfer {s.chamfer:.2f} %, normal consistency {s.normal_consistency:.3f}, F@2% {s.fscore:.2f}, "
            f"{s.pieces} piece(s), watertight {s.watertight}, genus {s.genus}{extra}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(out) + "\n")
    return out


def markdown(rows: list[dict]) -> str:
    """One table row per asset (the columns that were measured)."""
    cols = [("prompt", "prompt"), ("chamfer", "Chamfer %"), ("normal_consistency", "NC"), ("fscore", "F@2%")]
    cols += [("pieces", "pieces"), ("watertight", "watertight"), ("genus", "genus")]
    cols += [(k, h) for k, h in (("views_ok", "views ok /8"), ("gltf_errors", "glTF errors"),
                                 ("gltf_warnings", "glTF warnings")) if k in rows[0]]  # fmt: skip

    def fmt(v):
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[k]) for k, _ in cols) + " |" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
