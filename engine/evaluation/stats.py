"""Confidence intervals for rates measured on few assets (the Janus suite's verdict).

With k Janus assets out of n, the plain normal interval p ± z·√(p(1−p)/n) collapses to a point at k = 0 or
k = n and undercovers for the n ≈ 24 of a suite, so rates get the **Wilson score interval** (Wilson 1927):

    centre = (p + z²/2n) / (1 + z²/n),   half-width = z / (1 + z²/n) · √(p(1−p)/n + z²/4n²),

and the difference of two rates p₁ − p₂ gets **Newcombe's hybrid score interval** (Newcombe 1998, method 10)
built from the two Wilson intervals (l₁, u₁), (l₂, u₂):

    [d − √((p₁ − l₁)² + (u₂ − p₂)²),  d + √((u₁ − p₁)² + (p₂ − l₂)²)],   d = p₁ − p₂.

z is the two-sided normal quantile of the confidence level (1.96 at 95 %).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile of ``confidence`` (0.95 → 1.95996…)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1) (got {confidence})")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


@dataclass(frozen=True)
class Rate:
    """k successes in n trials with a Wilson interval."""

    k: int
    n: int
    rate: float
    """k / n (nan when n = 0)."""
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.n == 0:
            return "– (no assets)"
        return f"{self.rate:.2f} [{self.low:.2f}, {self.high:.2f}] ({self.k}/{self.n})"


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    """The rate k/n with its Wilson score interval at ``confidence``; n = 0 gives nan throughout."""
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n (got k={k}, n={n})")
    if n == 0:
        nan = float("nan")
        return Rate(0, 0, nan, nan, nan)
    z = z_value(confidence)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # The interval contains p exactly; clamp only the rounding at 0 and 1.
    return Rate(k, n, p, max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Difference:
    """p₁ − p₂ of two rates with Newcombe's hybrid score interval."""

    difference: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def sign(self) -> int:
        """−1 if the whole interval lies below 0, +1 if above, 0 if it contains 0 (or is undefined)."""
        if self.high < 0:
            return -1
        if self.low > 0:
            return 1
        return 0


def difference(a: Rate, b: Rate) -> Difference:
    """a.rate − b.rate with Newcombe's interval from the two Wilson intervals (same confidence as theirs)."""
    d = a.rate - b.rate
    low = d - math.sqrt((a.rate - a.low) ** 2 + (b.high - b.rate) ** 2)
    high = d + math.sqrt((a.high - a.rate) ** 2 + (b.rate - b.low) ** 2)
    return Difference(d, low, high)


__all__ = ["Difference", "Rate", "difference", "wilson", "z_value"]
