"""Janus: does an asset show its front where its back should be, and how many fronts does it have?

For an object with a front (snowman: nose, eyes, buttons; house: door, windows) seen from V views at
azimuths a_v (0° = the front), the judge says per view whether a front is visible, f_v ∈ {0, 1}.

* **Back-front rate** — how often the front appears where the back should be:
  ``r = Σ_{v ∈ B} f_v / |B|`` over the back views ``B = {v : |a_v| > 180° − h}`` (strictly within h of
  180°, h = 45° by default: the back sector of the engine's view prompts without its boundary views, from
  where a box-shaped front is not visible at all but the judge is least sure).
* **Number of fronts** — a front is seen from the arc of azimuths around it, so each front shows as a run
  of consecutive front-visible views on the circle (view V−1 neighbours view 0). Single verdicts flicker
  (the judge is least sure near the sides), so first every gap shorter than ``min_run`` views inside the
  front-visible views is closed (one front whose reading drops out in a view stays one front), then
  ``n_fronts`` counts the circular runs of length ≥ ``min_run`` (a lone front-visible view is not a face).
  A front visible from *every* view has no gap to separate faces, yet one front is visible from at most
  ~180° of azimuth, so a full circle counts as 2.
* An asset is **Janus** when ``n_fronts ≥ 2``. A single front on the wrong side (a back-to-front asset)
  has a high back-front rate but one front: wrong, but not Janus.
* An asset **shows a front** when the judge sees one in at least half of the front views
  ``F = {v : |a_v| ≤ f}`` (f = 22.5° by default: the view at azimuth 0 and its two neighbours of a
  16-view turntable). A Janus rate means something only for a method whose assets form fronts at all: a
  featureless blob has no face to duplicate, and the judge's "front" verdicts on it are guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from jaxtyping import Bool, Float
from torch import Tensor


@dataclass
class JanusScore:
    """Janus metrics of one asset."""

    back_front_rate: float
    """Share of back views in which the judge sees a front (0 for a correct object, 1 for a two-faced one)."""
    n_back_views: int
    """Views in the back sector."""
    n_fronts: int
    """Distinct fronts around the circle (runs of front-visible views; a full circle counts as 2)."""
    janus: bool
    """n_fronts ≥ 2."""
    front_pattern: str
    """The front-visible verdicts from azimuth 0 on, e.g. ``FFF.....F`` (F = front seen)."""
    front_shown: bool
    """The judge sees a front in at least half of the front views (|azimuth| ≤ the front half-angle)."""

    def to_dict(self) -> dict:
        return asdict(self)


def back_views(azimuth: Float[Tensor, " V"], back_half_angle: float = 45.0) -> Bool[Tensor, " V"]:
    """Views strictly within ``back_half_angle`` degrees of azimuth 180° (any azimuth, wrapped)."""
    az = torch.remainder(torch.as_tensor(azimuth, dtype=torch.float64) + 180.0, 360.0) - 180.0
    return az.abs() > 180.0 - back_half_angle


def front_views(azimuth: Float[Tensor, " V"], front_half_angle: float = 22.5) -> Bool[Tensor, " V"]:
    """Views within ``front_half_angle`` degrees of azimuth 0 (inclusive; any azimuth, wrapped)."""
    az = torch.remainder(torch.as_tensor(azimuth, dtype=torch.float64) + 180.0, 360.0) - 180.0
    return az.abs() <= front_half_angle


def front_runs(front: Sequence[bool]) -> list[tuple[int, int]]:
    """Circular runs of True as (start index, length), in order of start; a full circle is one run of
    length V starting at 0 and no True gives no runs."""
    f = [bool(x) for x in front]
    n = len(f)
    if not any(f):
        return []
    if all(f):
        return [(0, n)]
    first_gap = f.index(False)
    runs, k = [], 0
    while k < n:
        i = (first_gap + k) % n
        if f[i]:
            length = 0
            while k < n and f[(first_gap + k) % n]:
                length, k = length + 1, k + 1
            runs.append((i, length))
        else:
            k += 1
    return sorted(runs)


def close_gaps(front: Sequence[bool], min_run: int = 2) -> list[bool]:
    """``front`` with every circular run of False shorter than ``min_run`` set to True (when any is True)."""
    f = [bool(x) for x in front]
    if not any(f):
        return f
    gaps = front_runs([not x for x in f])
    for start, length in gaps:
        if length < min_run:
            for k in range(length):
                f[(start + k) % len(f)] = True
    return f


def count_fronts(front: Sequence[bool], min_run: int = 2) -> int:
    """Distinct fronts: after :func:`close_gaps`, the circular runs of front-visible views of length ≥
    ``min_run``; a full circle counts as 2."""
    runs = front_runs(close_gaps(front, min_run))
    if runs and runs[0][1] == len(front):
        return 2
    return sum(length >= min_run for _, length in runs)


def janus_score(
    front: Sequence[bool],
    azimuth: Float[Tensor, " V"],
    back_half_angle: float = 45.0,
    min_run: int = 2,
    front_half_angle: float = 22.5,
) -> JanusScore:
    """Janus metrics from per-view front-visible verdicts ``front`` at ``azimuth`` (degrees, in view order
    around the circle)."""
    f = [bool(x) for x in front]
    if len(f) != len(azimuth):
        raise ValueError(f"{len(f)} verdicts for {len(azimuth)} azimuths")
    back = back_views(azimuth, back_half_angle).tolist()
    n_back = sum(back)
    if n_back == 0:
        raise ValueError(
            f"no view lies within {back_half_angle}° of the back: use more views or a wider back sector"
        )
    at_front = front_views(azimuth, front_half_angle).tolist()
    if not any(at_front):
        raise ValueError(
            f"no view lies within {front_half_angle}° of the front: use more views or a wider front sector"
        )
    n_fronts = count_fronts(f, min_run)
    seen = sum(x for x, a in zip(f, at_front) if a)
    return JanusScore(
        back_front_rate=sum(x for x, b in zip(f, back) if b) / n_back,
        n_back_views=n_back,
        n_fronts=n_fronts,
        janus=n_fronts >= 2,
        front_pattern="".join("F" if x else "." for x in f),
        front_shown=2 * seen >= sum(at_front),
    )


__all__ = [
    "JanusScore",
    "back_views",
    "close_gaps",
    "count_fronts",
    "front_runs",
    "front_views",
    "janus_score",
]
