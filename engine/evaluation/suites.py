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
from engine.evaluation.session import Evaluation, Runs, janus_arms, rgb_of, spec
from engine.evaluation.stats import Rate, difference, wilson
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
    """Per arm (a method, or ESD at one λ): the share of assets that show a front, the Janus rate with its
    confidence interval, the back-front rate and fronts per asset; the verdict against SDS; λ-effect
    against seed-effect."""
    c, jc = ev.cfg, ev.cfg.janus
    azimuth = c.views.cameras().azimuth
    arms = janus_arms(c)

    def score_row(arm: str, setting: float | None, prompt: str, seed: int | None, rgb) -> dict[str, Any]:
        row: dict[str, Any] = {"arm": arm, "lam": setting, "prompt": prompt, "seed": seed}
        row.update(diverged=rgb is None, front_pattern="")
        row.update(dict.fromkeys(["front_shown", "janus_asset", "back_front_rate", "n_fronts"], float("nan")))
        if rgb is not None:
            front = [v.front_visible for v in judge_images(ev.judge, rgb)]
            sc = janus_score(front, azimuth, jc.back_half_angle, jc.min_run, jc.front_half_angle)
            row.update(front_shown=float(sc.front_shown), janus_asset=float(sc.janus))
            row.update(
                back_front_rate=sc.back_front_rate, n_fronts=sc.n_fronts, front_pattern=sc.front_pattern
            )
        return row

    rows = [
        score_row("truth", None, p, None, world_views(spec_for_prompt(p), c.views).rgb) for p in jc.prompts
    ]
    assets: dict[tuple[str, str, float | None, int], Any] = {}
    for arm in arms:
        for p in jc.prompts:
            for s in jc.seeds:
                r = runs[arm.spec(c, p, s)]
                rgb = None if r.diverged else rgb_of(r)
                assets[(arm.label, p, arm.setting, s)] = rgb
                rows.append(score_row(arm.label, arm.setting, p, s, rgb))

    metrics = ["front_shown", "janus_asset", "back_front_rate", "n_fronts"]
    summary = summarise(rows, ["arm"], metrics)
    by_prompt = summarise(rows, ["arm", "prompt"], metrics)
    for entry in summary:
        ok = [r for r in rows if r["arm"] == entry["arm"] and not r["diverged"]]
        entry["front_rate"] = wilson(
            sum(r["front_shown"] == 1.0 for r in ok), len(ok), jc.confidence
        ).to_dict()
        entry["janus_rate"] = wilson(
            sum(r["janus_asset"] == 1.0 for r in ok), len(ok), jc.confidence
        ).to_dict()
    verdict = janus_verdict(summary, jc.min_front_rate, jc.confidence)

    # Does λ change the asset at all? (If not, differences between the λ arms are the seeds' doing.)
    lam_effect = []
    for p in jc.prompts:
        by = {
            (lam, s): rgb
            for (_, q, lam, s), rgb in assets.items()
            if q == p and lam is not None and rgb is not None
        }
        across_lam, across_seeds = setting_effect(by)
        lam_effect.append({"prompt": p, "across_lam": across_lam, "across_seeds": across_seeds})

    plots.janus(
        summary, jc.min_front_rate, f"Janus on {', '.join(jc.prompts)}", ev.out / "janus.png", ev.prov
    )
    ev.sheet("janus", runs)
    pct = f"{jc.confidence:.0%}"
    md = [
        f"**Verdict: {verdict['text']}**",
        "",
        f"Prompts {', '.join(jc.prompts)} × seeds {', '.join(map(str, jc.seeds))}, "
        f"{jc.steps or c.steps} steps; {c.views.n} views from azimuth 0 (the front). An asset *shows a front* "
        f"when the judge sees one in at least half of the views within {jc.front_half_angle:g}° of azimuth 0; "
        f"a front is a run of ≥ {jc.min_run} consecutive front-visible views (circular; visible from every view "
        f"counts as 2); a *Janus* asset has ≥ 2 fronts; a back view lies strictly within {jc.back_half_angle:g}° "
        f"of 180°. Rates pool the prompts, with {pct} Wilson intervals; differences to SDS have {pct} Newcombe "
        f"intervals. The suite decides only if ≥ {jc.min_front_rate:.0%} of SDS assets show a front. `truth` = "
        "the true objects (the judge's own reading).",
        "",
        report.markdown_table(
            [
                "arm",
                "assets",
                "diverged",
                "show a front",
                "Janus rate",
                "Janus − SDS",
                "back views with a front",
                "fronts",
            ],
            [
                [
                    e["arm"],
                    e["n"],
                    e["diverged"],
                    _rate(e["front_rate"]),
                    _rate(e["janus_rate"]),
                    verdict["against_sds"].get(e["arm"], {}).get("text", "–"),
                    e["back_front_rate"],
                    e["n_fronts"],
                ]
                for e in summary
            ],
        ),
        "",
        "Per prompt:",
        "",
        report.markdown_table(
            ["arm", "prompt", "assets", "show a front", "Janus assets", "back views with a front"],
            [
                [e["arm"], e["prompt"], e["n"], e["front_shown"], e["janus_asset"], e["back_front_rate"]]
                for e in by_prompt
            ],
        ),
        "",
        "Does λ change the asset? Mean pixel RMS between the λ arms' assets of one seed (VSD is λ = 0), against "
        "the mean between the seeds' assets of one λ (a small ratio means λ barely moves the asset):",
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
            ["arm", "prompt", "seed", "views", "fronts", "shows a front"],
            [
                [
                    r["arm"],
                    r["prompt"],
                    r["seed"],
                    f"`{r['front_pattern'] or 'diverged'}`",
                    r["n_fronts"],
                    "–" if r["diverged"] else ("yes" if r["front_shown"] == 1.0 else "no"),
                ]
                for r in rows
            ],
        ),
        "",
        "![janus](janus.png)",
        "",
        "[every asset's views](views_janus.png)",
    ]
    return {
        "rows": rows,
        "summary": summary,
        "by_prompt": by_prompt,
        "verdict": verdict,
        "lam_effect": lam_effect,
        "markdown": "\n".join(md),
    }


def _rate(r: dict) -> str:
    return str(Rate(**r))


def janus_verdict(summary: list[dict], min_front_rate: float, confidence: float) -> dict[str, Any]:
    """Whether the suite can decide, and each arm's Janus rate against SDS's.

    It can decide only when SDS — the baseline whose Janus problem the papers fix — forms fronts in at
    least ``min_front_rate`` of its assets; then an arm *lowers* (raises) the Janus rate when the whole
    Newcombe interval of its difference to SDS lies below (above) 0, and otherwise the difference is not
    resolved at this many assets."""
    arms = {e["arm"]: e for e in summary}
    out: dict[str, Any] = {"decided": False, "against_sds": {}}
    sds = arms.get("sds")
    if sds is None or sds["n"] == 0:
        out["text"] = "cannot decide: the suite has no SDS assets to compare with"
        return out
    front = Rate(**sds["front_rate"])
    base = Rate(**sds["janus_rate"])
    for name, e in arms.items():
        if name in ("sds", "truth") or e["n"] == 0:
            continue
        d = difference(Rate(**e["janus_rate"]), base)
        word = {-1: "lower", 1: "higher", 0: "not resolved"}[d.sign]
        out["against_sds"][name] = d.to_dict() | {
            "sign": d.sign,
            "text": f"{d.difference:+.2f} [{d.low:+.2f}, {d.high:+.2f}] ({word})",
        }
    out["sds_front_rate"] = front.to_dict()
    if front.rate < min_front_rate:
        out["text"] = (
            f"cannot decide: only {front.k} of {front.n} SDS assets ({front.rate:.0%}) show a front, below the "
            f"{min_front_rate:.0%} a Janus test needs (a featureless asset has no face to duplicate)"
        )
        return out
    out["decided"] = True
    parts = []
    for name, d in out["against_sds"].items():
        verb = {-1: "lowers", 1: "raises", 0: "does not measurably change"}[d["sign"]]
        parts.append(
            f"{name} {verb} the Janus rate against SDS ({d['text'].split(' (')[0]}, {confidence:.0%})"
        )
    out["text"] = (
        f"SDS shows a front in {front.k} of {front.n} assets ({front.rate:.0%}), so the test decides: "
        f"SDS's Janus rate is {base}; " + "; ".join(parts)
    )
    return out


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
