"""The thread runner's prior cache: a worker preloads the default prior as soon as it starts, so that the
first job does not wait for the load (~2–5 s on CPU), and a job that arrives during the preload waits for
it rather than loading a second copy."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch

import engine.priors
from engine.config import RunConfig
from engine.serve.__main__ import main
from engine.serve.events import EventWriter
from engine.serve.jobs import JobStore
from engine.serve.runner import LocalJobRunner, PriorCache, preload_spec

CPU = torch.device("cpu")


class _Loads:
    """Stands in for ``engine.priors.load_prior``: counts the loads, each taking ``seconds``."""

    def __init__(self, seconds: float = 0.0, error: Exception | None = None):
        self.seconds, self.error = seconds, error
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, spec, device):
        self.calls += 1
        self.started.set()
        time.sleep(self.seconds)
        if self.error:
            raise self.error
        return object()


@pytest.fixture
def loads(monkeypatch) -> _Loads:
    fake = _Loads(seconds=0.3)
    monkeypatch.setattr(engine.priors, "load_prior", fake)
    return fake


def test_a_job_during_the_preload_waits_for_it_and_says_how_long(loads):
    cache = PriorCache()
    cache.preload("builtin", CPU)
    assert loads.started.wait(5)
    prior, seconds = cache.get("builtin", CPU)  # arrives while the preload is loading
    assert loads.calls == 1, "the job loaded a second copy instead of waiting for the preload"
    assert seconds > 0.1, "the wait for the preload is time the job spent on its prior"
    again, seconds = cache.get("builtin", CPU)
    assert again is prior and seconds == 0.0 and loads.calls == 1


def test_a_failed_preload_is_logged_and_the_job_gets_the_reason(monkeypatch, caplog):
    fake = _Loads(error=FileNotFoundError("no unet/ in /nowhere"))
    monkeypatch.setattr(engine.priors, "load_prior", fake)
    cache = PriorCache()
    with caplog.at_level(logging.WARNING, logger="engine.serve.runner"):
        cache.preload("builtin", CPU).join(10)
    assert "could not preload the prior 'builtin'" in caplog.text and "no unet/" in caplog.text
    with pytest.raises(FileNotFoundError, match="no unet/"):  # the job tries again and fails with it
        cache.get("builtin", CPU)
    assert fake.calls == 2


@pytest.mark.parametrize("preload", ["builtin", None])
def test_thread_workers_preload_only_when_told(loads, tmp_path, preload):
    writer = EventWriter()
    runner = LocalJobRunner(JobStore(tmp_path, writer), [CPU], queue_size=4, workers=2, preload=preload)
    runner.start([])
    try:
        time.sleep(1.0)  # two loads of 0.3 s, one after the other (MODEL_BUILD_LOCK)
        # Each worker keeps its own copy (ESD/VSD attach adapters to the UNet of a running job's prior).
        assert loads.calls == (2 if preload else 0)
    finally:
        runner.begin_shutdown()
        runner.join(10)
        writer.close()


def test_preload_flag(capsys):
    assert preload_spec(None) == RunConfig().prior == "builtin"  # not given: the jobs' default prior
    assert preload_spec("builtin-pixel32") == "builtin-pixel32"
    assert preload_spec("none") is None and preload_spec("None") is None
    assert main(["--preload", "/nowhere/prior", "--data-dir", "/tmp/never-made", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --preload '/nowhere/prior':") and err.endswith("(or --preload none)")
    assert len(err.splitlines()) == 1
