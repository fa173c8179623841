"""Diversity distances: zero between identical assets, small for near-identical, large for different ones."""

import numpy as np
import torch

from engine.evaluation.diversity import (
    feature_distance,
    judge_features,
    mean_off_diagonal,
    pairwise,
    pixel_distance,
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
