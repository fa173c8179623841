"""The Ray actor's class, as plain Python: it preloads the default prior in the background when it starts
(the server's start-up check, ``info()``, is answered meanwhile), as the thread runner's workers do."""

from __future__ import annotations

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
    worker = EngineWorker(device="cpu", scratch=str(tmp_path), preload=preload)
    assert worker.info()["job"] is None and time.perf_counter() - t0 < 5  # not blocked by the load
    release.set()
    if preload:
        worker.priors.get(preload, worker.device)  # the preloaded copy, not a second load
    time.sleep(0.2)
    assert len(calls) == (1 if preload else 0)
