"""Diversity distances: zero between identical assets, small for near-identical, large for different ones."""

import numpy as np
import torch

from engine.evaluation.diversity import (
    feature_distance,
    judge_features,
    mean_off_diagonal,
    pairwise,
    pixel_distance,
    setting_effect,
)
from engine.evaluation.views import ViewConfig, world_views
from engine.world.scene import ObjectSpec


def test_identical_assets_have_zero_diversity(judge, red_cube):
    f = judge_features(judge, red_cube.rgb)
    assert pixel_distance(red_cube.rgb, red_cube.rgb.clone()) == 0.0
    assert feature_distance(f, f.clone()) == 0.0
    for items, dist in (([red_cube.rgb] * 3, pixel_distance), ([f] * 3, feature_distance)):
        m = pairwise(items, dist)
        assert m.shape == (3, 3) and np.all(m == 0.0) and mean_off_diagonal(m) == 0.0


def test_distances_order_near_and_far_assets(judge, red_cube):
    views = ViewConfig()
    turned = world_views(ObjectSpec("cube", "red", scale=0.9, yaw=10.0), views).rgb
    other = world_views(ObjectSpec("sphere", "blue", scale=0.9), views).rgb
    items = [red_cube.rgb, turned, other]
    px = pairwise(items, pixel_distance)
    ft = pairwise([judge_features(judge, x) for x in items], feature_distance)
    for m in (px, ft):
        assert np.allclose(m, m.T) and np.all(np.diag(m) == 0.0)
        assert 0.0 < m[0, 1] < m[0, 2]
    assert mean_off_diagonal(px) > 0.0


def test_judge_features_are_what_its_heads_read(judge, red_cube):
    x = red_cube.rgb[:4]
    cls_logits, colour_logits, _ = judge(x)
    f = judge_features(judge, x)
    assert torch.allclose(judge.class_head(f), cls_logits, atol=1e-5)
    assert torch.allclose(judge.colour_head(f), colour_logits, atol=1e-5)


def test_setting_effect_separates_a_setting_that_does_nothing_from_one_that_matters(red_cube):
    views = ViewConfig()
    sphere = world_views(ObjectSpec("sphere", "blue", scale=0.9), views).rgb
    turned = world_views(ObjectSpec("cube", "red", scale=0.9, yaw=10.0), views).rgb
    # Seeds 0/1 make a cube/a turned cube; a setting that does nothing gives the same assets at both values.
    inert = {(k, 0): red_cube.rgb for k in (0.0, 1.0)} | {(k, 1): turned for k in (0.0, 1.0)}
    across_k, across_seeds = setting_effect(inert)
    assert across_k == 0.0 and across_seeds == pixel_distance(red_cube.rgb, turned)
    # A setting that turns the cube into a sphere moves the asset more than the seed does.
    strong = {(0.0, 0): red_cube.rgb, (0.0, 1): turned, (1.0, 0): sphere, (1.0, 1): sphere}
    across_k, across_seeds = setting_effect(strong)
    assert across_k > across_seeds > 0.0
    # A missing (diverged) asset drops its pairs, and no pair left is nan, not an error.
    assert np.isnan(setting_effect({(0.0, 0): red_cube.rgb, (1.0, 1): sphere})[0])
