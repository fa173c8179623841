"""Janus metrics: circular runs of fronts, back views, and the judge on true and two-faced world objects."""

import pytest
import torch

from engine.evaluation.janus import back_views, close_gaps, count_fronts, front_runs, janus_score
from engine.evaluation.stats import wilson
from engine.evaluation.suites import janus_verdict
from engine.evaluation.views import framed_views, true_radius, world_render
from engine.judge import judge_images
from engine.world.scene import ObjectSpec


def pattern(text: str) -> list[bool]:
    return [c == "F" for c in text]


@pytest.mark.parametrize(
    "text,runs",
    [
        ("........", []),
        ("FFFFFFFF", [(0, 8)]),
        ("FF....FF", [(6, 4)]),  # wraps around: views 6, 7, 0, 1
        ("FFF.F...", [(0, 3), (4, 1)]),
        (".FF..FF.", [(1, 2), (5, 2)]),
    ],
)
def test_front_runs_are_circular(text, runs):
    assert front_runs(pattern(text)) == runs


@pytest.mark.parametrize(
    "text,min_run,fronts",
    [
        ("........", 2, 0),
        ("FFF.....", 2, 1),
        ("FF.....F", 2, 1),  # one front across the seam
        ("FF..FF..", 2, 2),
        ("FFFF.F..", 2, 1),  # a one-view dropout inside a front: still one front
        ("FFFF.F..", 1, 2),
        ("F.F.....", 2, 1),
        ("F...F...", 2, 0),  # lone verdicts are not faces
        ("FFF.FFF.", 2, 2),  # closing the gaps leaves the full circle: two faces
        ("FFFFFFFF", 2, 2),  # a front seen from every side: two faces at least
    ],
)
def test_count_fronts(text, min_run, fronts):
    assert count_fronts(pattern(text), min_run) == fronts


def test_close_gaps_fills_short_circular_gaps_only():
    assert close_gaps(pattern(".FFF.FFF"), 2) == pattern("FFFFFFFF")  # one-view gaps at 0 and 4
    assert close_gaps(pattern(".FFF.FF."), 2) == pattern(".FFFFFF.")  # the gap 7–0 wraps: 2 views
    assert close_gaps(pattern("FF..FF.."), 2) == pattern("FF..FF..")
    assert close_gaps(pattern("........"), 2) == pattern("........")


def test_back_views_are_strictly_within_the_half_angle_of_180():
    az = torch.tensor([0.0, 90.0, 135.0, 157.5, 180.0, -157.5, -135.0, 540.0])
    assert back_views(az, 45.0).tolist() == [False, False, False, True, True, True, False, True]


def test_janus_score_of_patterns():
    az = torch.arange(8) * 45.0  # back sector: 180° only
    two_faced = janus_score(pattern("FF.FFF.F"), az)
    assert two_faced.janus and two_faced.n_fronts == 2 and two_faced.back_front_rate == 1.0
    right = janus_score(pattern("FF.....F"), az)
    assert not right.janus and right.n_fronts == 1 and right.back_front_rate == 0.0
    backwards = janus_score(pattern("...FFF.."), az)  # one front, on the wrong side: not Janus
    assert not backwards.janus and backwards.back_front_rate == 1.0
    # Front views (±22.5°) of 8 views are view 0 alone; 16 views: views 15, 0, 1, and half of them must see it.
    assert right.front_shown and two_faced.front_shown and not backwards.front_shown
    az16 = torch.arange(16) * 22.5
    assert janus_score(pattern("F..............F"), az16).front_shown
    assert not janus_score(pattern(".F.............."), az16).front_shown
    with pytest.raises(ValueError, match="no view"):
        janus_score(pattern("FF"), torch.tensor([0.0, 90.0]))


@pytest.mark.parametrize("scale", [0.9, 0.5])
@pytest.mark.parametrize("shape,colour", [("snowman", "white"), ("house", "red"), ("house", "blue")])
def test_judge_sees_one_front_on_the_true_object_and_two_on_a_janus_one(
    judge, eval_views, shape, colour, scale
):
    """The evaluation's own pipeline (framed turntable → judge → janus_score) on world objects, also at
    half size, as generated assets often are (framing zooms in to the true object's size)."""
    reference = true_radius(ObjectSpec(shape, colour, scale=0.9), eval_views)
    scores = {}
    for janus in (False, True):
        render = world_render(ObjectSpec(shape, colour, scale=scale, janus=janus), eval_views.size)
        v = framed_views(render, eval_views, reference)
        front = [x.front_visible for x in judge_images(judge, v.rgb)]
        scores[janus] = janus_score(front, v.azimuth)
    assert scores[False].n_fronts == 1 and not scores[False].janus and scores[False].front_shown, scores[
        False
    ]
    assert scores[False].back_front_rate == 0.0, scores[False]
    assert scores[True].n_fronts >= 2 and scores[True].janus, scores[True]
    assert scores[True].back_front_rate == 1.0, scores[True]


def test_an_object_turned_away_shows_no_front(judge, eval_views):
    """The suite's "forms a front" test reads the front views: a true snowman facing the back fails it."""
    reference = true_radius(ObjectSpec("snowman", "white", scale=0.9), eval_views)
    render = world_render(ObjectSpec("snowman", "white", scale=0.9, yaw=180.0), eval_views.size)
    v = framed_views(render, eval_views, reference)
    score = janus_score([x.front_visible for x in judge_images(judge, v.rgb)], v.azimuth)
    assert not score.front_shown and score.n_fronts == 1 and score.back_front_rate == 1.0, score


def summary_row(arm: str, front: int, janus: int, n: int = 24) -> dict:
    return {
        "arm": arm,
        "n": n,
        "front_rate": wilson(front, n).to_dict(),
        "janus_rate": wilson(janus, n).to_dict(),
    }


def test_the_verdict_needs_sds_to_form_fronts():
    rows = [summary_row("sds", front=18, janus=12), summary_row("esd λ=0.5", front=20, janus=2)]
    v = janus_verdict(rows, min_front_rate=0.8, confidence=0.95)
    assert not v["decided"] and v["text"].startswith("cannot decide: only 18 of 24 SDS assets (75%)")
    assert v["against_sds"]["esd λ=0.5"]["sign"] == -1  # the difference is still reported


def test_the_verdict_reads_the_difference_interval():
    rows = [
        summary_row("truth", front=3, janus=0, n=3),
        summary_row("sds", front=22, janus=12),
        summary_row("esd λ=0.5", front=21, janus=2),  # 0.50 → 0.08: resolved at 24 assets
        summary_row("esd λ=1", front=21, janus=9),  # 0.50 → 0.38: not resolved
        summary_row("vsd", front=23, janus=20),  # 0.50 → 0.83: higher
    ]
    v = janus_verdict(rows, min_front_rate=0.8, confidence=0.95)
    assert v["decided"] and set(v["against_sds"]) == {"esd λ=0.5", "esd λ=1", "vsd"}
    assert [v["against_sds"][a]["sign"] for a in ("esd λ=0.5", "esd λ=1", "vsd")] == [-1, 0, 1]
    assert "esd λ=0.5 lowers" in v["text"] and "esd λ=1 does not measurably change" in v["text"]
    assert "vsd raises" in v["text"]
    assert not janus_verdict(rows[2:], 0.8, 0.95)["decided"]  # no SDS arm: nothing to compare with
