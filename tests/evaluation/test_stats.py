"""The intervals behind the Janus verdict, against published values."""

import math

import pytest

from engine.evaluation.stats import difference, wilson, z_value


def test_z_of_95_percent():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        z_value(1.0)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),  # an all-or-nothing count still gets an interval (normal approx.: [0, 0])
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Table I
    ],
)
def test_wilson_interval(k, n, low, high):
    r = wilson(k, n)
    assert (
        r.rate == k / n and r.low == pytest.approx(low, abs=5e-4) and r.high == pytest.approx(high, abs=5e-4)
    )


def test_wilson_of_no_assets_is_undefined_and_bad_counts_are_refused():
    assert math.isnan(wilson(0, 0).rate)
    with pytest.raises(ValueError):
        wilson(3, 2)


def test_newcombe_difference_interval():
    # Newcombe (1998), example (a): 56/70 − 48/80 = 0.2000, method 10: 0.0524 to 0.3339.
    d = difference(wilson(56, 70), wilson(48, 80))
    assert d.difference == pytest.approx(0.2)
    assert d.low == pytest.approx(0.0524, abs=5e-4) and d.high == pytest.approx(0.3339, abs=5e-4)
    assert d.sign == 1 and difference(wilson(48, 80), wilson(56, 70)).sign == -1
    assert difference(wilson(3, 8), wilson(4, 8)).sign == 0  # 8 assets cannot resolve 3 vs 4
