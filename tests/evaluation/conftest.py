"""Shared fixtures of the evaluation tests: the shipped judge and world renders (deterministic)."""

import pytest

from engine.evaluation.views import ViewConfig, world_views
from engine.judge import load_judge
from engine.world.scene import ObjectSpec


@pytest.fixture(scope="session")
def judge():
    return load_judge()


@pytest.fixture(scope="session")
def eval_views() -> ViewConfig:
    """The evaluation's default turntable (16 views, 15° elevation, 64 px)."""
    return ViewConfig()


@pytest.fixture(scope="session")
def red_cube(eval_views):
    return world_views(ObjectSpec("cube", "red", scale=0.9), eval_views)
