"""Diversity: how different are the assets that different seeds make from one prompt?

The LMC-SDS paper (§4, "Increasing Sample Diversity") compares runs with fixed and resampled ε by LPIPS.
Our offline analogues compare two assets a and b through their renders from the same V cameras,
x^a_v, x^b_v ∈ [0, 1]^{3×H×W}:

* **pixels** — ``d_px(a, b) = sqrt( mean_{v,c,y,x} (x^a_v − x^b_v)² )`` (RMS difference);
* **judge features** — the judge's penultimate features φ(x) ∈ R^D (its convolutional trunk, globally
  average-pooled: what its class, colour and front heads read), compared per view by cosine distance:
  ``d_φ(a, b) = mean_v (1 − cos(φ(x^a_v), φ(x^b_v)))`` — a perceptual distance in the world's terms,
  insensitive to small shifts that dominate pixel differences.

Over S seeds the pairwise distances form a symmetric S × S matrix with a zero diagonal; the diversity of a
setting is the mean of its off-diagonal entries. Identical assets have zero diversity.

The same distance says whether a setting (ESD's λ, say) changes the asset at all: for assets a_{k,s} of
settings k and seeds s, compare the mean distance between settings at one seed,
``mean_s mean_{k<k'} d(a_{k,s}, a_{k',s})``, with the mean distance between seeds at one setting,
``mean_k mean_{s<s'} d(a_{k,s}, a_{k,s'})`` (:func:`setting_effect`). A ratio near 0 means the setting
leaves the asset as it was and any difference in a metric along it is noise.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from engine.judge import INPUT_SIZE, Judge

T = TypeVar("T")


@torch.no_grad()
def judge_features(judge: Judge, rgb: Float[Tensor, "B 3 H W"]) -> Float[Tensor, "B D"]:
    """φ(x): the judge's pooled trunk features, exactly what :meth:`Judge.forward` feeds its heads."""
    x = rgb.to(next(judge.parameters()).device).float()
    if x.shape[-1] != INPUT_SIZE or x.shape[-2] != INPUT_SIZE:
        x = F.interpolate(
            x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False
        )
    return judge.features(x * 2 - 1).mean(dim=(2, 3)).cpu()


def pixel_distance(a: Float[Tensor, "V 3 H W"], b: Float[Tensor, "V 3 H W"]) -> float:
    """RMS difference of two assets' renders from the same cameras."""
    if a.shape != b.shape:
        raise ValueError(f"renders of different shapes: {tuple(a.shape)} vs {tuple(b.shape)}")
    return float(((a.double() - b.double()) ** 2).mean().sqrt())


def feature_distance(fa: Float[Tensor, "V D"], fb: Float[Tensor, "V D"]) -> float:
    """Mean over views of the cosine distance 1 − cos(φ_a, φ_b) of the judge features."""
    if fa.shape != fb.shape:
        raise ValueError(f"features of different shapes: {tuple(fa.shape)} vs {tuple(fb.shape)}")
    # 1 − cos(a, b) = ½‖a/‖a‖ − b/‖b‖‖²: the same number, but exactly 0 for identical vectors.
    na, nb = F.normalize(fa.double(), dim=-1), F.normalize(fb.double(), dim=-1)
    return float((0.5 * ((na - nb) ** 2).sum(dim=-1)).mean())


def pairwise(items: Sequence[T], distance: Callable[[T, T], float]) -> np.ndarray:
    """The symmetric S × S matrix of ``distance`` between all pairs of ``items`` (zero diagonal)."""
    n = len(items)
    out = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        out[i, j] = out[j, i] = distance(items[i], items[j])
    return out


def mean_off_diagonal(m: np.ndarray) -> float:
    """Mean of the off-diagonal entries (the mean pairwise distance); needs at least two items."""
    m = np.asarray(m, dtype=float)
    if m.shape[0] < 2:
        raise ValueError("diversity needs at least two seeds")
    return float(m[~np.eye(m.shape[0], dtype=bool)].mean())


def setting_effect(
    assets: dict[tuple[float, int], Float[Tensor, "V 3 H W"]],
) -> tuple[float, float]:
    """(mean pixel distance between settings at one seed, mean distance between seeds at one setting) of
    ``assets[(setting, seed)]``; pairs with a missing asset are left out (nan if no pair is left)."""
    settings = sorted({k for k, _ in assets})
    seeds = sorted({s for _, s in assets})

    def mean_over(pairs: list[tuple[tuple[float, int], tuple[float, int]]]) -> float:
        ds = [pixel_distance(assets[a], assets[b]) for a, b in pairs if a in assets and b in assets]
        return float(np.mean(ds)) if ds else float("nan")

    across_settings = [((a, s), (b, s)) for s in seeds for a, b in itertools.combinations(settings, 2)]
    across_seeds = [((k, a), (k, b)) for k in settings for a, b in itertools.combinations(seeds, 2)]
    return mean_over(across_settings), mean_over(across_seeds)


__all__ = [
    "setting_effect",
    "feature_distance",
    "judge_features",
    "mean_off_diagonal",
    "pairwise",
    "pixel_distance",
]
