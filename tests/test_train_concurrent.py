"""Runs on concurrent threads (the server's workers) give exactly what the same run gives alone: nothing in a
run draws from torch's global generator, which every thread of a process shares, and priors load and runs
build their modules one at a time (engine.train.MODEL_BUILD_LOCK)."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.config import build_config
from engine.serve.runner import PriorCache
from engine.train import MODEL_BUILD_LOCK, Trainer

OVERRIDES = {
    "field.grid.n_levels": 8,
    "field.grid.log2_hashmap_size": 14,
    "field.grid.max_resolution": 128,
    "field.grid.compile": False,
    "train.steps": 3,
    "train.render_size": 16,
    "renderer.n_samples": 24,
    "train.checkpoint_every": 0,
    "train.preview_every": 0,
}


def _run(prior_dir, method: str, seed: int, tmp_path) -> dict[str, torch.Tensor]:
    """Train a few steps; the trained state (field, and ε_ψ for ESD) as CPU tensors."""
    # Loaded as a server worker loads it; one per thread, as each worker has its own.
    prior, _ = PriorCache().get(str(prior_dir), torch.device("cpu"))
    cfg = build_config(
        "a red cube", method=method, prior=str(prior_dir), overrides={**OVERRIDES, "train.seed": seed}
    )
    trainer = Trainer(cfg, prior, tmp_path / f"{method}_{seed}_{threading.get_ident()}")
    trainer.run()
    state = {f"field.{k}": v.detach().clone() for k, v in trainer.field.state_dict().items()}
    if hasattr(trainer.guidance, "eps_psi"):
        state |= {
            f"eps_psi.{k}": v.detach().clone() for k, v in trainer.guidance.eps_psi.state_dict().items()
        }
    return state


class _GlobalGeneratorNoise:
    """Another thread drawing from (and reseeding) the global generator all the time, as code building a model
    on another worker does. It takes MODEL_BUILD_LOCK like the engine's own such code, so a run that builds
    something from the global generator without holding the lock sees its numbers change."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            with MODEL_BUILD_LOCK:
                torch.manual_seed(k)
                torch.rand(64)
            k += 1

    def __enter__(self) -> _GlobalGeneratorNoise:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("method", ["sds", "esd"])
def test_two_runs_on_two_threads_equal_each_run_alone(tiny_pixel_prior_dir, tmp_path, method):
    torch.manual_seed(1234)  # whatever the global generator holds must not matter
    alone = {seed: _run(tiny_pixel_prior_dir, method, seed, tmp_path) for seed in (0, 1)}
    assert any(not torch.equal(alone[0][k], alone[1][k]) for k in alone[0]), "the seeds should differ"

    together: dict[int, dict[str, torch.Tensor]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(seed: int) -> None:
        try:
            start.wait()
            together[seed] = _run(tiny_pixel_prior_dir, method, seed, tmp_path)
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    with _GlobalGeneratorNoise():
        threads = [threading.Thread(target=worker, args=(s,)) for s in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert not errors, errors
    for seed in (0, 1):
        assert together[seed].keys() == alone[seed].keys()
        different = [k for k in alone[seed] if not torch.equal(alone[seed][k], together[seed][k])]
        assert not different, f"seed {seed}: {different} differ between the concurrent run and the run alone"
