"""The evaluation's figures (matplotlib, Agg), each saved with its provenance by :func:`report.save_figure`.

Inputs are the suites' summaries (lists of dicts, one per group, as in ``results.json``) and, for the
fidelity statistics, :class:`~engine.evaluation.fidelity.ImageStatistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from engine.evaluation import report
from engine.evaluation.fidelity import GRADIENT_EDGES, ImageStatistics, histogram


def recognition(summary: list[dict], n_views: int, path: Path, prov: dict[str, Any]) -> None:
    """Grouped bars per method: class, colour and both accuracy."""
    fig, ax = report.new_figure(7, 3.6)
    a = ax[0, 0]
    x = np.arange(len(summary))
    for k, metric in enumerate(["class_acc", "colour_acc", "both_acc"]):
        a.bar(x + (k - 1) * 0.27, [s[metric] for s in summary], 0.27, label=metric.replace("_acc", ""))
    a.set_xticks(x, [s["method"] for s in summary])
    a.set_ylim(0, 1.05)
    a.set_ylabel("share of views right")
    a.set_title(f"Recognition by the judge ({n_views} views per asset)", fontsize=10)
    a.legend(fontsize=7, loc="lower right")
    report.save_figure(fig, path, prov)


def janus(summary: list[dict], min_front_rate: float, title: str, path: Path, prov: dict[str, Any]) -> None:
    """Per arm: the Janus rate and the share of assets showing a front, each with its confidence interval;
    the dashed line is the front rate SDS needs for the test to decide."""
    fig, ax = report.new_figure(7, 3.8)
    a = ax[0, 0]
    x = np.arange(len(summary))
    for dx, key, label in (
        (-0.2, "janus_rate", "Janus assets (≥ 2 fronts)"),
        (0.2, "front_rate", "assets showing a front"),
    ):
        rate = np.array([s[key]["rate"] for s in summary])
        err = np.array([[s[key]["rate"] - s[key]["low"], s[key]["high"] - s[key]["rate"]] for s in summary]).T
        a.bar(x + dx, rate, 0.4, yerr=err, capsize=3, label=label)
    a.axhline(
        min_front_rate, ls="--", color="0.4", lw=1, label=f"front rate SDS needs ({min_front_rate:.0%})"
    )
    a.set_xticks(x, [s["arm"] for s in summary], fontsize=8)
    a.set_ylim(0, 1.05)
    a.set_title(title, fontsize=9)
    a.legend(fontsize=7)
    report.save_figure(fig, path, prov)


def fidelity_statistics(
    stats: dict[tuple[str, float], list[ImageStatistics]],
    truth: Sequence[ImageStatistics],
    methods: Sequence[str],
    scales: Sequence[float],
    path: Path,
    prov: dict[str, Any],
) -> None:
    """LMC-SDS Fig. 6 per ω: mean power spectra (top) and vertical-derivative histograms (bottom) of each
    method's renders, with the true objects' in black."""
    fig, ax = report.new_figure(3.2 * len(scales) + 0.6, 6.2, ncols=len(scales), nrows=2)
    t_spec = torch.stack([t.spectrum for t in truth]).mean(0)
    t_hist = histogram(torch.cat([t.derivative for t in truth]), GRADIENT_EDGES)
    centres = (GRADIENT_EDGES[1:] + GRADIENT_EDGES[:-1]) / 2
    k = np.arange(1, len(t_spec) + 1)
    for col, w in enumerate(scales):
        top, bottom = ax[0, col], ax[1, col]
        top.loglog(k, t_spec, "k-", lw=2, label="truth")
        bottom.semilogy(centres, t_hist.clamp(min=1e-4), "k-", lw=2, label="truth")
        for m in methods:
            st = stats.get((m, float(w)), [])
            if st:
                top.loglog(k, torch.stack([s.spectrum for s in st]).mean(0), label=m)
                bottom.semilogy(
                    centres,
                    histogram(torch.cat([s.derivative for s in st]), GRADIENT_EDGES).clamp(min=1e-4),
                    label=m,
                )
        top.set_title(f"ω = {w:g}: power spectrum", fontsize=9)
        top.set_xlabel("cycles per image", fontsize=8)
        bottom.set_title(f"ω = {w:g}: vertical derivative", fontsize=9)
        bottom.set_xlabel("∂y L", fontsize=8)
        top.legend(fontsize=7)
    ax[0, 0].set_ylabel("mean power")
    ax[1, 0].set_ylabel("density")
    fig.subplots_adjust(hspace=0.45)
    report.save_figure(fig, path, prov)


def fidelity_trends(
    summary: list[dict], truth: dict[str, float], methods: Sequence[str], path: Path, prov: dict[str, Any]
) -> None:
    """Each statistic (or distance to the truth) against ω, one line per method; the truth dashed."""
    panels = [
        ("spectrum_log10_l1", "spectrum Δ to truth (decades)"),
        ("hf_fraction", "HF power fraction"),
        ("saturation_mean", "mean saturation (foreground)"),
        ("derivative_mean_abs", "mean |∂y L|"),
    ]
    fig, ax = report.new_figure(13, 3.6, ncols=len(panels))
    for i, (key, title) in enumerate(panels):
        for m in methods:
            pts = sorted((s["scale"], s[key]) for s in summary if s["method"] == m)
            if pts:
                ax[0, i].plot(*zip(*pts), "o-", label=m)
        if key in truth:
            ax[0, i].axhline(truth[key], color="k", ls="--", label="truth")
        ax[0, i].set_xscale("log")
        ax[0, i].set_xlabel("guidance scale ω")
        ax[0, i].set_title(title, fontsize=9)
    ax[0, 1].legend(fontsize=7)
    report.save_figure(fig, path, prov)


def diversity(summary: list[dict], methods: Sequence[str], path: Path, prov: dict[str, Any]) -> None:
    """Bars of the mean pairwise distances, fixed vs resampled ε, per method."""
    fig, ax = report.new_figure(9, 3.6, ncols=2)
    x = np.arange(len(methods))
    for i, (key, title) in enumerate(
        [("pixel_rms", "pixel RMS"), ("judge_feature_cos", "judge-feature distance")]
    ):
        for k, noise in enumerate(("fixed", "resampled")):
            vals = [
                next((s[key] for s in summary if s["method"] == m and s["noise"] == noise), np.nan)
                for m in methods
            ]
            ax[0, i].bar(x + (k - 0.5) * 0.4, vals, 0.4, label=f"ε {noise}")
        ax[0, i].set_xticks(x, list(methods))
        ax[0, i].set_title(f"mean pairwise {title} between seeds", fontsize=9)
        ax[0, i].legend(fontsize=7)
    report.save_figure(fig, path, prov)


def views_sheet(
    rows: Sequence[tuple[str, Float[Tensor, "V 3 H W"]]], title: str, path: Path, prov: dict[str, Any]
) -> None:
    """One labelled row of views per entry (all with the same V, H, W)."""
    strip = torch.cat([torch.cat(list(rgb.clamp(0, 1)), dim=2) for _, rgb in rows], dim=1)
    h, w = strip.shape[1:]
    img_w = max(6.0, w / 110)  # inches: about one image pixel per figure pixel at the saved 110 dpi
    fig_h = img_w * h / w + 1.2
    fig, ax = report.new_figure(img_w + 3.0, fig_h)
    a = ax[0, 0]
    a.imshow(strip.permute(1, 2, 0).numpy(), interpolation="nearest")
    size = rows[0][1].shape[-2]
    a.set_yticks([size * (i + 0.5) for i in range(len(rows))], [label for label, _ in rows], fontsize=6)
    a.set_xticks([])
    a.set_title(title, fontsize=9)
    fig.subplots_adjust(left=2.8 / (img_w + 3.0), right=0.99, bottom=0.7 / fig_h, top=1 - 0.4 / fig_h)
    report.save_figure(fig, path, prov)


__all__ = ["diversity", "fidelity_statistics", "fidelity_trends", "janus", "recognition", "views_sheet"]
