"""The evaluation suites: what each computes from the renders of its runs.

:func:`~engine.evaluation.session.plan` lists a suite's runs and :class:`~engine.evaluation.session.Evaluation`
gets them (cached or trained now); each suite function here turns them into per-asset ``rows``, a
``summary`` per group (means over the assets that did not diverge), figures and a markdown section. The true objects are
scored like assets wherever the metric allows (rows with method ``truth``): they show the judge's own error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from engine.evaluation import plots, report
from engine.evaluation.diversity import (
    feature_distance,
    judge_features,
    mean_off_diagonal,
    pairwise,
    pixel_distance,
    setting_effect,
)
from engine.evaluation.fidelity import ImageStatistics, compare, image_statistics
from engine.evaluation.geometry_suite import geometry
from engine.evaluation.janus import janus_score
from engine.evaluation.recognition import recognition_score
from engine.evaluation.report import summarise
from engine.evaluation.session import Evaluation, Runs, front_prompts, lam_spec, rgb_of, spec
from engine.evaluation.views import spec_for_prompt, world_views
from engine.judge import judge_images


def _assets(
    ev: Evaluation, runs: Runs, prompts, methods, seeds
) -> Iterator[tuple[str, str, int | None, Any]]:
    """(method, prompt, seed, rgb or None if diverged): the true objects (method "truth", seed None), then
    every (method, prompt, seed) at the method's defaults."""
    for p in prompts:
        yield "truth", p, None, world_views(spec_for_prompt(p), ev.cfg.views).rgb
    for m in methods:
        for p in prompts:
            for s in seeds:
                r = runs[spec(p, m, s)]
                yield m, p, s, None if r.diverged else rgb_of(r)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# ------------------------------------------------------------------------------------------------ suites


def recognition(ev: Evaluation, runs: Runs) -> dict[str, Any]:
    """Class / colour / both accuracy of the judge over each asset's views, per method."""
    c = ev.cfg
    rows = []
    for method, prompt, seed, rgb in _assets(ev, runs, c.prompts, c.methods, c.seeds):
        obj = spec_for_prompt(prompt)
        row: dict[str, Any] = {"method": method, "prompt": prompt, "seed": seed, "diverged": rgb is None}
        row.update(class_acc=float("nan"), colour_acc=float("nan"), both_acc=float("nan"), verdicts="")
        if rgb is not None:
            verdicts = judge_images(ev.judge, rgb)
            score = recognition_score(verdicts, obj.shape, obj.colour)
            row.update(class_acc=score.class_acc, colour_acc=score.colour_acc, both_acc=score.both_acc)
            row["verdicts"] = " | ".join(f"{v.colour} {v.cls}" for v in verdicts)
        rows.append(row)
    summary = summarise(rows, ["method"], ["class_acc", "colour_acc", "both_acc"])
    by_prompt = summarise(rows, ["method", "prompt"], ["both_acc"])
    plots.recognition(summary, c.views.n, ev.out / "recognition.png", ev.prov)
    ev.sheet("recognition", runs)
    md = [
        f"Share of the {c.views.n} views per asset in which the judge names the prompt's class, its colour, "
        "and both (mean over assets; `truth` = the true objects).",
        "",
        report.markdown_table(
            ["method", "assets", "diverged", "class", "colour", "both"],
            [
                [s["method"], s["n"], s["diverged"], s["class_acc"], s["colour_acc"], s["both_acc"]]
                for s in summary
            ],
        ),
        "",
        "Both right, per prompt:",
        "",
        report.markdown_table(
            ["method", "prompt", "assets", "both"],
            [[s["method"], s["prompt"], s["n"], s["both_acc"]] for s in by_prompt],
        ),
        "",
        "![recognition](recognition.png)",
    ]
    return {"rows": rows, "summary": summary, "by_prompt": by_prompt, "markdown": "\n".join(md)}


def janus(ev: Evaluation, runs: Runs) -> dict[str, Any]:
    """Back-front rate, fronts around the circle and Janus assets per method, and along ESD's λ."""
    c, jc = ev.cfg, ev.cfg.janus
    fp = front_prompts(c)
    assets = [("method", m, None, p, s, rgb) for m, p, s, rgb in _assets(ev, runs, fp, c.methods, c.seeds)]
    for lam in jc.lams:
        for p in fp:
            for s in c.seeds:
                r = runs[lam_spec(p, s, lam)]
                assets.append(("lam", f"λ={lam:g}", float(lam), p, s, None if r.diverged else rgb_of(r)))
    azimuth = c.views.cameras().azimuth
    rows = []
    for group, method, lam, prompt, seed, rgb in assets:
        row: dict[str, Any] = {"group": group, "method": method, "lam": lam, "prompt": prompt, "seed": seed}
        row.update(
            diverged=rgb is None,
            back_front_rate=float("nan"),
            n_fronts=float("nan"),
            janus_asset=float("nan"),
        )
        row.update(front_pattern="")
        if rgb is not None:
            front = [v.front_visible for v in judge_images(ev.judge, rgb)]
            score = janus_score(front, azimuth, jc.back_half_angle, jc.min_run)
            row.update(back_front_rate=score.back_front_rate, n_fronts=score.n_fronts)
            row.update(janus_asset=float(score.janus), front_pattern=score.front_pattern)
        rows.append(row)
    metrics = ["janus_asset", "back_front_rate", "n_fronts"]
    summary = summarise([r for r in rows if r["group"] == "method"], ["method"], metrics)
    sweep = summarise([r for r in rows if r["group"] == "lam"], ["lam"], metrics)
    # Does λ change the asset at all? (If not, differences along the sweep are the judge's noise.)
    lam_effect = []
    for p in fp:
        by = {(lam, s): rgb for g, _, lam, q, s, rgb in assets if g == "lam" and q == p and rgb is not None}
        across_lam, across_seeds = setting_effect(by)
        lam_effect.append({"prompt": p, "across_lam": across_lam, "across_seeds": across_seeds})
    plots.janus(summary, sweep, f"Janus on {', '.join(fp)}", ev.out / "janus.png", ev.prov)
    ev.sheet("janus", runs)
    header = ["assets", "diverged", "Janus assets", "back views showing a front", "mean fronts"]
    cols = ["n", "diverged", *metrics]
    md = [
        f"Prompts with a front ({', '.join(fp)}), {c.views.n} views from azimuth 0 (the front). A back view lies "
        f"strictly within {jc.back_half_angle:g}° of 180°; a front is a run of ≥ {jc.min_run} consecutive "
        "front-visible views (circular; visible from every view counts as 2); a Janus asset has ≥ 2 fronts. "
        "`truth` = the true objects (the judge's own reading).",
        "",
        report.markdown_table(["method", *header], [[s["method"], *(s[k] for k in cols)] for s in summary]),
        "",
        "ESD λ sweep (λ = 0 is VSD, 0.5 ESD's default):",
        "",
        report.markdown_table(["λ", *header], [[f"{s['lam']:g}", *(s[k] for k in cols)] for s in sweep]),
        "",
        "Does λ change the asset? Mean pixel RMS between the λ values' assets of one seed, against the mean "
        "between the seeds' assets of one λ (renders of the same views; a small ratio means λ barely moved "
        "the asset and the sweep's differences are not λ's doing):",
        "",
        report.markdown_table(
            ["prompt", "between λ values (same seed)", "between seeds (same λ)", "ratio"],
            [
                [e["prompt"], e["across_lam"], e["across_seeds"], _ratio(e["across_lam"], e["across_seeds"])]
                for e in lam_effect
            ],
        ),
        "",
        "Front-visible verdicts per view (F = a front seen), from azimuth 0 counter-clockwise:",
        "",
        report.markdown_table(
            ["method", "prompt", "seed", "views", "fronts"],
            [
                [r["method"], r["prompt"], r["seed"], f"`{r['front_pattern'] or 'diverged'}`", r["n_fronts"]]
                for r in rows
            ],
        ),
        "",
        "![janus](janus.png)",
    ]
    return {
        "rows": rows,
        "summary": summary,
        "lam_sweep": sweep,
        "lam_effect": lam_effect,
        "markdown": "\n".join(md),
    }


def fidelity(ev: Evaluation, runs: Runs) -> dict[str, Any]:
    """Image statistics of SDS / LMC-SDS renders against the true objects', per guidance scale."""
    c, fc = ev.cfg, ev.cfg.fidelity
    truth: dict[str, ImageStatistics] = {}
    for p in fc.prompts:
        w = world_views(spec_for_prompt(p), c.views)
        truth[p] = image_statistics(w.rgb, w.mask)
    metrics = list(compare(truth[fc.prompts[0]], truth[fc.prompts[0]]).to_dict())
    rows, stats = [], defaultdict(list)
    for m in fc.methods:
        for w in fc.scales:
            for p in fc.prompts:
                for s in fc.seeds:
                    r = runs[spec(p, m, s, **{"guidance.guidance_scale": float(w)})]
                    row: dict[str, Any] = {
                        "method": m,
                        "scale": float(w),
                        "prompt": p,
                        "seed": s,
                        "diverged": r.diverged,
                    }
                    row.update(dict.fromkeys(metrics, float("nan")))
                    if r.views is not None:
                        st = image_statistics(r.views.rgb, r.views.mask)
                        stats[(m, float(w))].append(st)
                        row.update(compare(st, truth[p]).to_dict())
                    rows.append(row)
    summary = summarise(rows, ["method", "scale"], metrics)
    t_mean = {
        k: float(np.mean([getattr(t, k) for t in truth.values()]))
        for k in ("hf_fraction", "saturation_mean", "derivative_mean_abs")
    }
    plots.fidelity_statistics(
        stats, list(truth.values()), fc.methods, fc.scales, ev.out / "fidelity_statistics.png", ev.prov
    )
    plots.fidelity_trends(summary, t_mean, fc.methods, ev.out / "fidelity_distances.png", ev.prov)
    ev.sheet("fidelity", runs)
    cols = [
        "spectrum_log10_l1",
        "hf_fraction",
        "saturation_mean",
        "saturation_w1",
        "derivative_mean_abs",
        "derivative_w1",
    ]
    table = [[s["method"], f"{s['scale']:g}", s["n"], s["diverged"], *(s[k] for k in cols)] for s in summary]
    table.append(
        [
            "truth",
            "–",
            len(truth),
            0,
            0.0,
            t_mean["hf_fraction"],
            t_mean["saturation_mean"],
            0.0,
            t_mean["derivative_mean_abs"],
            0.0,
        ]
    )
    md = [
        f"Renders against the true object from the same {c.views.n} cameras (prompts {', '.join(fc.prompts)}, "
        f"seeds {', '.join(map(str, fc.seeds))}; mean over assets). Distances (Δ, W₁) are 0 at the truth's "
        "statistics; the statistics themselves say which way: HF power = share of luminance power above a "
        "quarter of the sampling rate, and mean |∂y L|, drop with blur; mean saturation (foreground) rises "
        "with over-saturation.",
        "",
        report.markdown_table(
            [
                "method",
                "ω",
                "assets",
                "diverged",
                "spectrum Δ (decades)",
                "HF power",
                "saturation",
                "saturation W₁",
                "mean |∂y L|",
                "∂y L W₁",
            ],
            table,
        ),
        "",
        "![fidelity statistics](fidelity_statistics.png)",
        "",
        "![fidelity trends](fidelity_distances.png)",
    ]
    return {"rows": rows, "summary": summary, "truth": t_mean, "markdown": "\n".join(md)}


def diversity(ev: Evaluation, runs: Runs) -> dict[str, Any]:
    """Mean pairwise distances between the seeds' assets, fixed vs resampled ε, per method."""
    c, dc = ev.cfg, ev.cfg.diversity
    rows, summary = [], []
    for m in dc.methods:
        for fixed in (True, False):
            noise = "fixed" if fixed else "resampled"
            px_means, ft_means, n_pairs = [], [], 0
            for p in dc.prompts:
                res = {s: runs[spec(p, m, s, **{"guidance.fixed_noise": fixed})] for s in dc.seeds}
                ok = [(s, rgb_of(r)) for s, r in res.items() if not r.diverged]
                if len(ok) < 2:
                    continue
                px = pairwise([rgb for _, rgb in ok], pixel_distance)
                ft = pairwise([judge_features(ev.judge, rgb) for _, rgb in ok], feature_distance)
                px_means.append(mean_off_diagonal(px))
                ft_means.append(mean_off_diagonal(ft))
                for i in range(len(ok)):
                    for j in range(i + 1, len(ok)):
                        n_pairs += 1
                        rows.append(
                            {
                                "method": m,
                                "noise": noise,
                                "prompt": p,
                                "seed_a": ok[i][0],
                                "seed_b": ok[j][0],
                                "pixel_rms": float(px[i, j]),
                                "judge_feature_cos": float(ft[i, j]),
                            }
                        )
            summary.append(
                {
                    "method": m,
                    "noise": noise,
                    "pairs": n_pairs,
                    "pixel_rms": float(np.mean(px_means)) if px_means else float("nan"),
                    "judge_feature_cos": float(np.mean(ft_means)) if ft_means else float("nan"),
                }
            )
    plots.diversity(summary, dc.methods, ev.out / "diversity.png", ev.prov)
    ev.sheet("diversity", runs)
    md = [
        f"Mean pairwise distance between the assets of seeds {', '.join(map(str, dc.seeds))} (prompts "
        f"{', '.join(dc.prompts)}; pairs of diverged runs left out), over {c.views.n} views: RMS of pixels, and "
        "1 − cosine similarity of the judge's penultimate features per view. Higher = more diverse; identical "
        "assets give 0.",
        "",
        report.markdown_table(
            ["method", "ε", "pairs", "pixel RMS", "judge-feature distance"],
            [[s["method"], s["noise"], s["pairs"], s["pixel_rms"], s["judge_feature_cos"]] for s in summary],
        ),
        "",
        "![diversity](diversity.png)",
    ]
    return {"rows": rows, "summary": summary, "markdown": "\n".join(md)}


SUITES: dict[str, Callable[[Evaluation, Runs], dict[str, Any]]] = {
    "recognition": recognition,
    "janus": janus,
    "fidelity": fidelity,
    "diversity": diversity,
    "geometry": geometry,
}
"""Suite name → function(evaluation, its runs) → {"rows", "summary", …, "markdown"}."""


__all__ = ["SUITES", "summarise"]
