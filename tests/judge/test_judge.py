"""The shipped judge reads ground-truth world renders correctly, including fronts and Janus objects."""

import pytest

from engine.cameras import turntable
from engine.judge import judge_images, load_judge
from engine.world.render import render_object
from engine.world.scene import ObjectSpec


@pytest.fixture(scope="module")
def judge():
    return load_judge()


@pytest.mark.parametrize(
    "shape,colour",
    [
        ("cube", "red"),
        ("sphere", "blue"),
        ("cone", "green"),
        ("torus", "yellow"),
        ("house", "purple"),
        ("snowman", "white"),
    ],
)
def test_judge_names_class_and_colour_from_most_sides(judge, shape, colour):
    out = render_object(ObjectSpec(shape, colour), turntable(8, elevation=15.0), size=64)
    v = judge_images(judge, out.images)
    assert sum(x.cls == shape for x in v) >= 7, [x.cls for x in v]
    assert sum(x.colour == colour for x in v) >= 7, [x.colour for x in v]


def test_front_visible_follows_the_camera(judge):
    cams = turntable(2, elevation=10.0)  # azimuth 0 (front) and 180 (back)
    v = judge_images(judge, render_object(ObjectSpec("snowman"), cams, size=64).images)
    assert v[0].front_visible and not v[1].front_visible
    janus = judge_images(judge, render_object(ObjectSpec("snowman", janus=True), cams, size=64).images)
    assert janus[0].front_visible and janus[1].front_visible  # a front where the back should be


def test_missing_weights_error_names_the_training_script(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/train_judge.py"):
        load_judge(tmp_path / "judge.safetensors")
