"""Score exported assets against the world's true shapes (the geometry suite's metrics, for any .glb).

    python scripts/score_geometry.py red_cube.glb "a red cube" [green_cone.glb "a green cone" ...] [--json out.json]

Per asset: Chamfer (% of the true bounding-box diagonal), normal consistency, F-score at 2 %, pieces,
watertight, genus of the largest piece, with yaw, position and scale fitted (``engine/evaluation/geometry.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cli import OneLineParser  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="+", help="ASSET.glb PROMPT, repeated")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give the assets and prompts in pairs: ASSET.glb PROMPT [ASSET.glb PROMPT ...]")
    from engine.evaluation.geometry import load_asset, score, true_mesh
    from engine.evaluation.views import spec_for_prompt

    out = []
    for glb, prompt in zip(args.pairs[::2], args.pairs[1::2]):
        if not Path(glb).is_file():
            parser.error(f"no asset at {glb}: give the path of an exported .glb")
        try:
            truth = true_mesh(spec_for_prompt(prompt))
        except ValueError as e:
            parser.error(str(e))
        s = score(load_asset(glb), truth)
        out.append({"asset": glb, "prompt": prompt, **s.to_dict()})
        print(
            f"{glb}: Chamfer {s.chamfer:.2f} %, normal consistency {s.normal_consistency:.3f}, F@2% {s.fscore:.2f}, "
            f"{s.pieces} piece(s), watertight {s.watertight}, genus {s.genus}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
