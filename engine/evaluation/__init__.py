"""Evaluation of generated assets in the built-in world, where the true object is known.

Metrics are plain functions, one module per family: :mod:`~engine.evaluation.recognition` (the judge
names the prompt's class and colour), :mod:`~engine.evaluation.janus` (fronts where the back should be),
:mod:`~engine.evaluation.fidelity` (image statistics against ground-truth renders, LMC-SDS Fig. 6) and
:mod:`~engine.evaluation.diversity` (distances between seeds). :mod:`~engine.evaluation.views` renders
the NeRF and the true object from the same cameras, :mod:`~engine.evaluation.runs` trains and caches
evaluation runs, :mod:`~engine.evaluation.report` stamps provenance on tables and figures.
``scripts/evaluate.py`` puts them together.
"""

from engine.evaluation.diversity import (
    feature_distance,
    judge_features,
    mean_off_diagonal,
    pairwise,
    pixel_distance,
)
from engine.evaluation.fidelity import FidelityDistances, ImageStatistics, compare, image_statistics
from engine.evaluation.janus import JanusScore, count_fronts, janus_score
from engine.evaluation.recognition import RecognitionScore, recognition_score
from engine.evaluation.views import ViewConfig, Views, nerf_views, spec_for_prompt, world_views

__all__ = [
    "FidelityDistances",
    "ImageStatistics",
    "JanusScore",
    "RecognitionScore",
    "ViewConfig",
    "Views",
    "compare",
    "count_fronts",
    "feature_distance",
    "image_statistics",
    "janus_score",
    "judge_features",
    "mean_off_diagonal",
    "nerf_views",
    "pairwise",
    "pixel_distance",
    "recognition_score",
    "spec_for_prompt",
    "world_views",
]
