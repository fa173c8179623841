"""The Ray actor's class, as plain Python: asked to preload a prior, it loads it in the background (the
server's start-up check, ``info()``, is answered meanwhile), as the thread runner's workers do; and the
actor class the cluster starts passes every worker method through."""

from __future__ import annotations

import inspect
import threading
import time

import pytest

import engine.priors
from engine.serve.worker import EngineWorker


@pytest.mark.parametrize("preload", ["builtin", None])
def test_an_actor_preloads_only_when_told(monkeypatch, tmp_path, preload):
    release = threading.Event()
    calls = []

    def slow_load(spec, device):
        calls.append(device)
        release.wait(10)
        return object()

    monkeypatch.setattr(engine.priors, "load_prior", slow_load)
    t0 = time.perf_counter()
    worker = EngineWorker(device="cpu", scratch=str(tmp_path))
    if preload:
        worker.preload(preload)
    assert worker.info()["job"] is None and time.perf_counter() - t0 < 5  # not blocked by the load
    release.set()
    if preload:
        worker.priors.get(preload, worker.device)  # the preloaded copy, not a second load
    time.sleep(0.2)
    assert len(calls) == (1 if preload else 0)


def _public(cls) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(f)
        for name, f in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_the_actor_class_passes_every_worker_method_through(tmp_path):
    """The actor class (importable without torch, so the server starts actors before its own imports)
    has each public method of EngineWorker with the same parameters, and answers as the worker does."""
    from engine.serve.ray_cluster import WorkerActor

    worker, actor = _public(EngineWorker), _public(WorkerActor)
    assert worker.keys() == actor.keys()
    for name, sig in worker.items():
        assert list(sig.parameters) == list(actor[name].parameters), name
    a = WorkerActor(device="cpu", scratch=str(tmp_path))
    assert a.info()["job"] is None and a.drain() == []
