"""Recognition accuracy: exact on synthetic verdicts; the judge reads the true object and not another."""

import pytest

from engine.evaluation.recognition import recognition_score
from engine.judge import Verdict, judge_images


def v(cls: str, colour: str) -> Verdict:
    return Verdict(cls, colour, False, 1.0, 1.0, 0.0)


def test_accuracies_count_views():
    verdicts = [v("cube", "red"), v("cube", "blue"), v("sphere", "red"), v("cube", "red")]
    s = recognition_score(verdicts, "cube", "red")
    assert (s.class_acc, s.colour_acc, s.both_acc, s.n_views) == (0.75, 0.75, 0.5, 4)
    with pytest.raises(ValueError):
        recognition_score([], "cube", "red")


def test_judge_recognises_the_true_object_only(judge, red_cube):
    verdicts = judge_images(judge, red_cube.rgb)
    right = recognition_score(verdicts, "cube", "red")
    assert right.class_acc >= 0.9 and right.colour_acc >= 0.9, [f"{x.colour} {x.cls}" for x in verdicts]
    wrong = recognition_score(verdicts, "sphere", "blue")
    assert wrong.colour_acc == 0.0 and wrong.both_acc == 0.0
