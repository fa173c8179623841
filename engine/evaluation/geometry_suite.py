"""The geometry suite: every exported asset against its true shape (metrics in :mod:`engine.evaluation.geometry`).

Per asset: Chamfer (% of the true diagonal), normal consistency, F-score at 2 %, pieces, watertight, genus of
the largest piece (against the true genus), the judge's reading of the exported mesh from 8 views
(:func:`engine.evaluation.views.asset_views`: the mesh as a user gets it, not the NeRF) and the Khronos
glTF-Validator's errors and warnings. ``passes`` says whether the asset meets every target of
:data:`TARGETS`. The true shapes are scored too (method ``truth``: the sampling floor of the metrics).
"""

from __future__ import annotations

from typing import Any

from engine.evaluation import report
from engine.evaluation.geometry import expected_genus, load_asset, score, true_mesh
from engine.evaluation.report import summarise
from engine.evaluation.session import Evaluation, Runs, geometry_spec
from engine.evaluation.views import asset_views, spec_for_prompt
from engine.judge import judge_images

TARGETS = {"normal_consistency": 0.90, "chamfer": 1.5, "fscore": 0.80, "views_ok": 7}
"""What a usable asset reaches (issue 13): normal consistency ≥, Chamfer % ≤, F-score ≥, judged right in ≥ k of
8 views; and one watertight piece of the right genus, 0 validator errors and warnings."""

METRICS = [
    "chamfer",
    "normal_consistency",
    "fscore",
    "pieces",
    "watertight",
    "genus_ok",
    "views_ok",
    "passes",
]
COLUMNS = ["Chamfer %", "NC", "F@2%", "pieces", "watertight", "genus ok", "views ok /8", "passes"]
"""Table headers of :data:`METRICS`, in order."""


def passes(row: dict[str, Any]) -> bool:
    """Whether an asset's row meets every target (validator counts of None — not validated — fail)."""
    t = TARGETS
    return bool(
        row["normal_consistency"] >= t["normal_consistency"]
        and row["chamfer"] <= t["chamfer"]
        and row["fscore"] >= t["fscore"]
        and row["views_ok"] >= t["views_ok"]
        and row["pieces"] == 1
        and row["watertight"]
        and row["genus_ok"]
        and row["gltf_errors"] == 0
        and row["gltf_warnings"] == 0
    )


def _row(ev: Evaluation, method: str, prompt: str, seed: int | None, run) -> dict[str, Any]:
    obj = spec_for_prompt(prompt)
    row: dict[str, Any] = {"method": method, "prompt": prompt, "seed": seed, "diverged": run is None}
    nan = float("nan")
    row.update({k: nan for k in (*METRICS, "genus", "boundary_edges", "nonmanifold_edges", "faces")})
    row.update(gltf_errors=None, gltf_warnings=None, verdicts="")
    if run is None:
        return row
    mesh = true_mesh(obj) if run == "truth" else load_asset(run.asset)
    s = score(mesh, true_mesh(obj))
    row.update(
        chamfer=s.chamfer,
        normal_consistency=s.normal_consistency,
        fscore=s.fscore,
        pieces=s.pieces,
        watertight=s.watertight,
        genus=s.genus,
        genus_ok=s.genus == expected_genus(obj),
        boundary_edges=s.boundary_edges,
        nonmanifold_edges=s.nonmanifold_edges,
    )
    if run == "truth":
        return row
    verdicts = judge_images(ev.judge, asset_views(run.asset))
    row["views_ok"] = sum(v.cls == obj.shape and v.colour == obj.colour for v in verdicts)
    row["verdicts"] = " | ".join(f"{v.colour} {v.cls}" for v in verdicts)
    errors, warnings = ev.validate_gltf(run.asset) if ev.validate_gltf else (None, None)
    row.update(gltf_errors=errors, gltf_warnings=warnings, faces=run.record["export"]["faces"]["final"])
    row["passes"] = passes(row)
    return row


def geometry(ev: Evaluation, runs: Runs) -> dict[str, Any]:
    """Geometry of every exported asset against its true shape, per method and per prompt."""
    g = ev.cfg.geometry
    rows = [_row(ev, "truth", p, None, "truth") for p in g.prompts]
    for m in g.methods:
        for p in g.prompts:
            for s in g.seeds:
                r = runs[geometry_spec(ev.cfg, p, m, s)]
                rows.append(_row(ev, m, p, s, None if r.diverged else r))
    summary = summarise(rows, ["method"], METRICS)
    by_prompt = summarise(rows, ["method", "prompt"], METRICS)
    ev.sheet("geometry", runs)
    t = TARGETS
    validated = ev.validate_gltf is not None
    md = [
        f"Exported meshes against the true shapes ({len(g.seeds)} seed(s), {g.steps or ev.cfg.steps} steps; yaw, "
        "position and scale fitted): Chamfer in % of the true bounding-box diagonal, normal consistency, F-score "
        "at 2 %, pieces, watertight and right genus (shares), the exported mesh judged right in k of 8 views, "
        f"and `passes`: share of assets meeting every target (NC ≥ {t['normal_consistency']}, Chamfer ≤ "
        f"{t['chamfer']} %, F ≥ {t['fscore']}, one watertight piece of the right genus, ≥ {t['views_ok']}/8 "
        "views, 0 glTF-Validator errors and warnings"
        + ("" if validated else "; **the validator was not available, so no asset passes**")
        + "). `truth` = the true shapes' own marching-cubes meshes: the floor of the sampled metrics.",
        "",
        report.markdown_table(
            ["method", "assets", "diverged", *COLUMNS],
            [[s["method"], s["n"], s["diverged"], *(s[k] for k in METRICS)] for s in summary],
        ),
        "",
        "Per prompt (means over seeds):",
        "",
        report.markdown_table(
            ["method", "prompt", *COLUMNS],
            [[s["method"], s["prompt"], *(s[k] for k in METRICS)] for s in by_prompt],
        ),
    ]
    errs = [r for r in rows if r.get("gltf_errors") or r.get("gltf_warnings")]
    md += ["", f"glTF-Validator: {len(errs)} asset(s) with errors or warnings" if validated else ""]
    return {"rows": rows, "summary": summary, "by_prompt": by_prompt, "markdown": "\n".join(md)}


__all__ = ["METRICS", "TARGETS", "geometry", "passes"]
