"""Every bound of every registered method's settings is enforced at the server's door: a request with a
value outside it is a 422 naming the setting, before anything is queued. The cases are generated from the
registry and the fields' metadata, so a new method or a new bound is covered without editing this file."""

from __future__ import annotations

import pytest

from engine.configbase import Bounds, leaves
from engine.guidance import METHODS
from tests.serve.conftest import Server, job_request


def _outside(bounds: Bounds, is_int: bool) -> list[float]:
    """Values just outside each side of ``bounds``."""
    step = 1 if is_int else 0.5
    out: list[float] = []
    if bounds.ge is not None:
        out.append(bounds.ge - step)
    if bounds.gt is not None:
        out.append(bounds.gt)
    if bounds.le is not None:
        out.append(bounds.le + step)
    if bounds.lt is not None:
        out.append(bounds.lt)
    return [int(v) if is_int else float(v) for v in out]


def _cases() -> list[tuple[str, str, float, str]]:
    """(method, option path, bad value, what the error must say) for every bound of every method."""
    cases = []
    for name, cls in METHODS.items():
        for leaf in leaves(cls()):
            if leaf.type not in (int, float, float | None):
                continue
            is_int = leaf.type is int
            valid, limits = leaf.bounds, leaf.serve
            for value in _outside(valid, is_int) if valid is not None else []:
                cases.append((name, f"guidance.{leaf.path}", value, "must be"))
            for value in _outside(limits, is_int) if limits is not None else []:
                if valid is None or valid.holds(value):  # else the engine's own bound speaks first
                    cases.append((name, f"guidance.{leaf.path}", value, "outside this server's limits"))
    return cases


CASES = _cases()


def test_every_method_has_bounded_settings():
    methods = {c[0] for c in CASES}
    assert methods == set(METHODS)
    # The examples: ESD's λ outside [0, 1], a guidance scale of 0 for LMC-SDS (it divides by ω).
    assert ("esd", "guidance.lam", 1.5, "must be") in CASES
    assert ("lmc-sds", "guidance.guidance_scale", 0.0, "must be") in CASES


@pytest.mark.parametrize("method,path,value,says", CASES, ids=[f"{m}-{p}={v}" for m, p, v, _ in CASES])
def test_out_of_bounds_method_setting_is_a_422_naming_it(idle_server: Server, method, path, value, says):
    r = idle_server.client.post("/v1/jobs", json=job_request(method=method, options={path: value}))
    assert r.status_code == 422, (r.status_code, r.text)
    error = r.json()["error"]
    assert path in error and says in error, error


@pytest.mark.parametrize(
    "path,value",
    [
        ("renderer.lambertian_prob", 1.5),
        ("renderer.textureless_prob", -0.1),
        ("guidance.timesteps.t_min", 0.99),  # above t_max: a rule across two fields
        ("guidance.camera_dropout", 0.0),  # ESD with λ > 0 learns its camera-free score from dropped cameras
    ],
)
def test_other_refusals_a_worker_would_make_are_422s_at_the_door(idle_server: Server, path, value):
    r = idle_server.client.post("/v1/jobs", json=job_request(method="esd", options={path: value}))
    assert r.status_code == 422, (r.status_code, r.text)
    assert path in r.json()["error"]
