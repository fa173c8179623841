"""The panel's plain data, without Blender: settings → request, events → job state, and what is shown."""

from __future__ import annotations

import pytest

from blender_addon.client import SSEEvent
from blender_addon.state import (
    JobView,
    apply_event,
    build_request,
    format_eta,
    parse_options,
    settings_from_request,
)

PANEL = {
    "prompt": "  a   red cube ",
    "method": "esd",
    "preset": "fast",
    "seed": 3,
    "variants": 2,
    "noise": "DEFAULT",
    "use_guidance_scale": False,
    "guidance_scale": 7.5,
    "use_steps": False,
    "steps": 500,
    "use_lam": False,
    "lam": 0.5,
    "use_texture_size": False,
    "texture_size": "1024",
    "prior": "builtin",
    "extra_options": "",
}


def test_request_sends_only_what_the_user_set():
    assert build_request(PANEL) == {
        "prompt": "a red cube",
        "method": "esd",
        "preset": "fast",
        "seed": 3,
        "variants": 2,
    }
    full = build_request(
        {
            **PANEL,
            "noise": "FIXED",
            "use_guidance_scale": True,
            "use_steps": True,
            "use_lam": True,
            "lam": 0.25,
            "use_texture_size": True,
            "prior": "sd",
            "extra_options": "renderer.n_samples = 48; cameras.fov_range=[40, 55]\nfield.grid.compile=false",
        }
    )
    assert full == {
        "prompt": "a red cube",
        "method": "esd",
        "preset": "fast",
        "seed": 3,
        "variants": 2,
        "prior": "sd",
        "fixed_noise": True,
        "steps": 500,
        "guidance_scale": 7.5,
        "texture_size": 1024,
        "options": {
            "guidance.lam": 0.25,
            "renderer.n_samples": 48,
            "cameras.fov_range": [40, 55],
            "field.grid.compile": False,
        },
    }
    # λ belongs to ESD only; fresh noise is an explicit False.
    sds = build_request({**PANEL, "method": "sds", "use_lam": True, "noise": "FRESH"})
    assert "options" not in sds and sds["fixed_noise"] is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prompt": "   "}, "type a prompt first"),
        ({"extra_options": "renderer.n_samples"}, "is not of the form dotted.path = value"),
        ({"extra_options": "samples = 3"}, "is not a dotted path"),
        ({"use_lam": True, "extra_options": "guidance.lam = 0.1"}, "guidance.lam is set twice"),
    ],
)
def test_request_errors_are_readable(values, message):
    with pytest.raises(ValueError, match=message):
        build_request({**PANEL, **values})


def test_parse_options_reads_json_values_else_text():
    assert parse_options("a.b = 1; a.c = 0.5; a.d = True; a.e = sd:foo/bar; a.f = null") == {
        "a.b": 1,
        "a.c": 0.5,
        "a.d": True,
        "a.e": "sd:foo/bar",
        "a.f": None,
    }
    assert parse_options(" ; \n") == {}


def ev(id: int, type: str, **data) -> SSEEvent:
    return SSEEvent(id, type, data)


def test_events_drive_the_job_and_replays_are_ignored():
    job = JobView(key="k", prompt="a red cube", state="queued")
    apply_event(job, ev(1, "status", state="running", message="variant 1/2 (seed 0) started", variant=0))
    assert job.state == "running" and job.status_text() == "Running: variant 1/2 (seed 0) started"
    apply_event(
        job, ev(2, "progress", variant=0, variants=2, seed=0, step=15, total=30, loss=1.0, its=10, eta_s=4.5)
    )
    assert job.progress == pytest.approx(0.25)
    assert job.status_text() == "Running variant 1/2: 15/30, 4 s left"
    apply_event(job, ev(2, "progress", variant=0, variants=2, seed=0, step=1, total=30, its=1, eta_s=99))
    assert job.step == 15  # id 2 again: a replay after a reconnect changes nothing
    apply_event(job, ev(3, "preview", variant=0, step=15, size=64))
    assert job.preview_step == 15
    apply_event(job, ev(4, "progress", variant=0, variants=2, seed=0, step=30, total=30, its=10, eta_s=3.0))
    assert job.status_text() == "Running variant 1/2: exporting the mesh"
    apply_event(job, ev(5, "result", variant=0, seed=0, glb="/v1/jobs/x/result?variant=0"))
    apply_event(
        job,
        ev(
            6,
            "status",
            state="running",
            message="variant 2/2 resumed from step 10",
            variant=1,
            resumed_from_step=10,
        ),
    )
    assert (job.variant, job.step) == (1, 10) and "resumed from step 10" in job.message
    apply_event(job, ev(7, "error", message="out of memory"))
    apply_event(job, ev(8, "status", state="failed", final=True, message="out of memory"))
    assert job.final and job.error == "out of memory" and list(job.results) == [0]
    job.files[0] = "x.glb"
    assert job.ready_to_import  # a failed job still offers the variant that finished


def test_format_eta():
    assert [format_eta(s) for s in (None, 4.4, 59.6, 65, 3725)] == [
        "?",
        "4 s",
        "1 min 00 s",
        "1 min 05 s",
        "1 h 02 min",
    ]


def test_menus_come_from_the_engines_health_answer():
    from blender_addon.state import OFFLINE_CATALOG, catalog_from_health

    health = {
        "methods": [
            {"name": "sds", "label": "SDS", "summary": "s"},
            {"name": "new", "label": "New", "summary": "n"},
        ],
        "presets": [{"name": "fast", "label": "Fast", "summary": "f"}],
        "limits": {"texture_sizes": [64, 128]},
    }
    c = catalog_from_health(health)
    assert c.method_names == ["sds", "new"] and c.methods[1] == ("new", "New", "n")
    assert c.texture_sizes == (64, 128) and c.presets == (("fast", "Fast", "f"),)
    # An answer without lists keeps what was known; an older engine's bare names still make a menu.
    assert catalog_from_health({}, c) == c
    assert catalog_from_health({"methods": ["sds", "esd"]}).method_names == ["sds", "esd"]
    assert catalog_from_health({"methods": []}) == OFFLINE_CATALOG


@pytest.mark.parametrize(
    "values",
    [
        {"prompt": "a red cube", "method": "sds", "preset": "fast", "seed": 0, "variants": 1},
        {
            "prompt": "a blue house",
            "method": "esd",
            "preset": "quality",
            "seed": 7,
            "variants": 3,
            "noise": "FIXED",
            "use_steps": True,
            "steps": 300,
            "use_guidance_scale": True,
            "guidance_scale": 20.0,
            "use_texture_size": True,
            "texture_size": "512",
            "use_lam": True,
            "lam": 0.7,
            "prior": "sd",
            "extra_options": "renderer.n_samples = 48; cameras.fov_range = [40, 55]",
        },
    ],
)
def test_recall_puts_back_the_settings_that_make_the_same_request(values):
    request = build_request(values)
    recalled = settings_from_request(request)
    assert build_request(recalled) == request
    assert recalled["seed_mode"] == "FIXED"  # recalled to make it again: Generate must not move the seed


def test_recall_of_a_job_with_explicit_seeds():
    recalled = settings_from_request({"prompt": "a snowman", "seeds": [4, 9, 11]})
    assert (recalled["seed"], recalled["variants"], recalled["method"]) == (4, 3, "sds")
