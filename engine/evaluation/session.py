"""Which runs each evaluation suite needs (:func:`plan`) and the state the suites share (:class:`Evaluation`):
the config, the output folder, the run cache (runs trained now or loaded, see :mod:`engine.evaluation.runs`),
the lazily loaded prior, the judge, provenance, and the progress/ETA lines of a long evaluation.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.evaluation import plots
from engine.evaluation.config import EvalConfig
from engine.evaluation.runs import RunResult, RunSpec, RunStore, get_run, run_key
from engine.evaluation.views import spec_for_prompt, world_views
from engine.judge import load_judge

Runs = dict[RunSpec, RunResult]


def spec(prompt: str, method: str, seed: int, export: bool = False, **overrides: Any) -> RunSpec:
    """A run spec with dotted overrides, e.g. ``spec(p, "sds", 0, **{"guidance.guidance_scale": 30.0})``;
    ``export`` also writes the asset's .glb."""
    return RunSpec(prompt, method, seed, tuple(sorted(overrides.items())), export)


def geometry_spec(cfg: EvalConfig, prompt: str, method: str, seed: int) -> RunSpec:
    """A run of the geometry suite: exported, at the suite's step count (0: the evaluation's)."""
    steps = cfg.geometry.steps or cfg.steps
    return spec(prompt, method, seed, export=True, **{"train.steps": steps})


@dataclass(frozen=True)
class JanusArm:
    """One arm of the Janus suite: a method at its defaults, or ESD at one λ (λ = 0 runs as VSD)."""

    method: str
    lam: float | None = None
    """ESD's λ of this arm (None: the method's own defaults)."""

    @property
    def label(self) -> str:
        return self.method if self.lam is None else f"esd λ={self.lam:g}"

    @property
    def setting(self) -> float | None:
        """Where the arm sits on ESD's λ axis (VSD is λ = 0); None for methods off that axis."""
        if self.lam is not None:
            return self.lam
        return 0.0 if self.method == "vsd" else None

    def spec(self, cfg: EvalConfig, prompt: str, seed: int) -> RunSpec:
        over: dict[str, Any] = {"train.steps": cfg.janus.steps or cfg.steps}
        if self.lam is None:
            return spec(prompt, self.method, seed, **over)
        if self.lam == 0.0:  # the same maths as VSD: share its run
            return spec(prompt, "vsd", seed, **over)
        return spec(prompt, "esd", seed, **over, **{"guidance.lam": float(self.lam)})


def janus_arms(cfg: EvalConfig) -> list[JanusArm]:
    """The Janus suite's arms: ``janus.methods`` at their defaults, then ESD at each of ``janus.lams``
    (an ESD λ of 0 is left out when VSD is already an arm)."""
    j = cfg.janus
    arms = [JanusArm(m) for m in j.methods]
    arms += [JanusArm("esd", float(lam)) for lam in j.lams if not (lam == 0.0 and "vsd" in j.methods)]
    return list(dict.fromkeys(arms))


def plan(cfg: EvalConfig, suite: str) -> list[RunSpec]:
    """The runs a suite needs, in training order."""
    c = cfg
    if suite == "recognition":
        specs = [spec(p, m, s) for m in c.methods for p in c.prompts for s in c.seeds]
    elif suite == "janus":
        specs = [a.spec(c, p, s) for a in janus_arms(c) for p in c.janus.prompts for s in c.janus.seeds]
    elif suite == "fidelity":
        f = c.fidelity
        specs = [
            spec(p, m, s, **{"guidance.guidance_scale": float(w)})
            for m in f.methods
            for w in f.scales
            for p in f.prompts
            for s in f.seeds
        ]
    elif suite == "diversity":
        d = c.diversity
        specs = [
            spec(p, m, s, **{"guidance.fixed_noise": fixed})
            for m in d.methods
            for fixed in (True, False)
            for p in d.prompts
            for s in d.seeds
        ]
    elif suite == "geometry":
        g = c.geometry
        specs = [geometry_spec(c, p, m, s) for m in g.methods for p in g.prompts for s in g.seeds]
    else:
        raise ValueError(f"unknown suite {suite!r}")
    return list(dict.fromkeys(specs))


class Evaluation:
    """Shared state of one evaluation: config, output folder, run cache, prior (lazy), judge, provenance."""

    def __init__(
        self,
        cfg: EvalConfig,
        out: Path,
        prov: dict[str, Any],
        validate_gltf: Callable[[Path], tuple[int, int]] | None = None,
    ):
        self.cfg, self.out, self.prov = cfg, Path(out), prov
        self.validate_gltf = validate_gltf
        """path → (errors, warnings) of the Khronos glTF-Validator; None: not available (not validated)."""
        self.store = RunStore(self.out / "runs")
        self.settings = cfg.run_settings()
        self.judge = load_judge()
        self._prior = None
        self.trained: dict[str, list[float]] = defaultdict(list)
        """Method → seconds (setup + train + render) of each run trained in this process."""
        self.trained_before: dict[str, list[float]] = defaultdict(list)
        """Method → recorded seconds of the cached runs (for the ETA of a resumed evaluation)."""
        self.cached_keys: set[str] = set()
        """Keys of the runs loaded from the cache (trained by an earlier invocation)."""
        self.trained_keys: set[str] = set()
        """Keys of the runs trained by this process."""
        self.pending: dict[str, str] = {}
        """Key → method of every run still to train in this evaluation (for the ETA; set by the caller)."""

    def prior(self):
        """The built-in prior, loaded on first use (never when every run is cached)."""
        if self._prior is None:
            from engine.device import resolve_device
            from engine.priors import load_prior, resolve_prior_spec

            self._prior = load_prior(resolve_prior_spec(self.settings.prior), resolve_device(self.cfg.device))
        return self._prior

    @property
    def prior_loaded(self) -> bool:
        return self._prior is not None

    def key(self, s: RunSpec) -> str:
        """The run's cache key (resolved config + views): specs with equal keys are the same run."""
        return run_key(self.settings.config(s), self.cfg.views, s.export)

    def is_cached(self, s: RunSpec) -> bool:
        return (self.store.folder(s, self.key(s)) / "run.json").exists()

    def unique(self, specs: list[RunSpec]) -> list[RunSpec]:
        """``specs`` without those sharing a key with an earlier one."""
        first: dict[str, RunSpec] = {}
        for s in specs:
            first.setdefault(self.key(s), s)
        return list(first.values())

    def runs(self, specs: list[RunSpec], suite: str) -> Runs:
        """Every run of ``specs``, cached or trained now, with a progress line per trained run."""
        unique = self.unique(specs)
        todo = [s for s in unique if not self.is_cached(s)]
        print(
            f"\n## {suite}: {len(unique)} runs ({len(unique) - len(todo)} cached, {len(todo)} to train)",
            flush=True,
        )
        by_key: dict[str, RunResult] = {}
        for s in unique:
            t0 = time.perf_counter()
            r = get_run(s, self.settings, self.cfg.views, self.store, self.prior)
            by_key[r.key] = r
            if r.cached:
                if r.key not in self.trained_keys:  # not one this process trained for an earlier suite
                    self.cached_keys.add(r.key)
                continue
            self.trained_keys.add(r.key)
            sec = sum(r.record["seconds"].values())
            self.trained[s.method].append(sec)
            self.pending.pop(r.key, None)
            i = todo.index(s)
            eta = sum(self.estimate(x.method) for x in todo[i + 1 :])
            eta_all = sum(self.estimate(m) for m in self.pending.values())
            note = f" — {r.record['diverged']}" if r.diverged else ""
            print(
                f"  [{i + 1}/{len(todo)}] {s.label()}: {sec:.0f} s (wall {time.perf_counter() - t0:.0f} s){note}; "
                f"ETA ~{eta / 60:.1f} min for this suite, ~{eta_all / 60:.1f} min for all",
                flush=True,
            )
        return {s: by_key[self.key(s)] for s in specs}

    def estimate(self, method: str) -> float:
        """Mean seconds of this method's runs (trained now, else recorded in the cache; of any method's
        when it has none yet)."""
        for source in (self.trained, self.trained_before):
            if source.get(method):
                return float(np.mean(source[method]))
        every = [x for v in (*self.trained.values(), *self.trained_before.values()) for x in v]
        return float(np.mean(every)) if every else 0.0

    def sheet(self, suite: str, runs: Runs) -> None:
        """``views_<suite>.png``: the true objects of the suite's prompts, then every run once."""
        rows = [
            (f"truth {p!r}", world_views(spec_for_prompt(p), self.cfg.views).rgb)
            for p in dict.fromkeys(s.prompt for s in runs)
        ]
        seen: set[str] = set()
        for s, r in runs.items():
            if not r.diverged and r.key not in seen:
                seen.add(r.key)
                rows.append((s.label(), rgb_of(r)))
        title = f"{suite}: views from azimuth 0 (the front), counter-clockwise seen from above"
        plots.views_sheet(rows, title, self.out / f"views_{suite}.png", self.prov)


def rgb_of(r: RunResult) -> torch.Tensor:
    """The run's rendered views; a diverged run has none (an error naming it)."""
    if r.views is None:
        raise ValueError(f"run {r.spec.label()} diverged: it has no views")
    return r.views.rgb


__all__ = ["Evaluation", "JanusArm", "Runs", "geometry_spec", "janus_arms", "plan", "rgb_of", "spec"]
