"""The typed configuration of an evaluation (``scripts/evaluate.py``): which suites, runs and views.

Every run starts from the engine's fast preset with the built-in prior and differs only in what a suite
varies (method, prompt, seed, ω, λ, fixed ε); the shared settings (steps, render size …) are here. The
default plan fits the issue's budget on a 2-core CPU (see the script's docstring for the numbers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.evaluation.runs import RunSettings
from engine.evaluation.views import ViewConfig, spec_for_prompt
from engine.guidance import METHODS

SUITE_NAMES = ("recognition", "janus", "fidelity", "diversity", "geometry")
DEFAULT_SUITES = ("recognition", "fidelity", "diversity")
"""The suites of a plain ``scripts/evaluate.py``; janus and geometry train many full-length runs and are asked
for by name."""
GEOMETRY_PROMPTS = (
    "a blue sphere",
    "a red cube",
    "an orange cylinder",
    "a green cone",
    "a yellow torus",
    "a purple pyramid",
    "a snowman",
    "a red house",
)
"""Every primitive of the world, and both objects with a front."""


JANUS_PROMPTS = ("a snowman", "a red house", "a blue house")
"""The objects with a front: the snowman (nose, eyes, buttons) and the house in two colours (door, windows)."""


@dataclass
class JanusSuite:
    """Janus suite (ESD's headline claim): prompts with a front × seeds × arms, where an arm is a method at
    its defaults or ESD at one λ of ``lams``; per arm the Janus rate with a confidence interval, the share
    of assets that form a front at all, and a verdict against SDS."""

    prompts: tuple[str, ...] = JANUS_PROMPTS
    """Prompts, each of an object with a front (snowman, … house)."""
    methods: tuple[str, ...] = ("sds", "vsd")
    """Methods run at their defaults (SDS is the baseline of the verdict; VSD is ESD at λ = 0)."""
    lams: tuple[float, ...] = (0.5, 1.0)
    """ESD λ values, one arm each (0.5 is ESD's default; λ = 0 would be the VSD run)."""
    seeds: tuple[int, ...] = tuple(range(8))
    """Seeds per (arm, prompt)."""
    steps: int = 600
    """Training steps of these runs: long enough that SDS forms fronts (0: the evaluation's --steps)."""
    back_half_angle: float = 45.0
    """Back views lie strictly within this many degrees of azimuth 180°."""
    front_half_angle: float = 22.5
    """Front views lie within this many degrees of azimuth 0; an asset shows a front when the judge sees
    one in at least half of them."""
    min_run: int = 2
    """Consecutive front-visible views that make one front; shorter runs, and shorter gaps inside a front,
    are judge flicker."""
    min_front_rate: float = 0.8
    """Share of SDS assets that must show a front for the suite to decide (below it the verdict is
    "cannot decide": there are no faces to duplicate)."""
    confidence: float = 0.95
    """Confidence level of the intervals (Wilson for rates, Newcombe for their differences)."""


@dataclass
class FidelitySuite:
    """Fidelity suite: image statistics against the true object across guidance scales."""

    methods: tuple[str, ...] = ("sds", "lmc-sds")
    """Methods compared."""
    scales: tuple[float, ...] = (10.0, 30.0, 100.0)
    """Guidance scales ω (10: the built-in prior's default for SDS and LMC-SDS; 30: the LMC-SDS paper's;
    100: DreamFusion's)."""
    prompts: tuple[str, ...] = ("a red cube", "a snowman")
    """Prompts (world objects: the ground truth is their world render)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds per (method, ω, prompt)."""


@dataclass
class DiversitySuite:
    """Diversity suite: pairwise distances between seeds, fixed vs resampled ε."""

    methods: tuple[str, ...] = ("lmc-sds",)
    """Methods compared (each with guidance.fixed_noise true and false)."""
    prompts: tuple[str, ...] = ("a red cube",)
    """Prompts; distances are taken between the seeds of one prompt."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Seeds (at least 2)."""


@dataclass
class GeometrySuite:
    """Geometry suite: exported meshes against the true shapes (pose and scale fitted), with the judge's
    reading of the exported asset and the Khronos glTF-Validator's verdict."""

    prompts: tuple[str, ...] = GEOMETRY_PROMPTS
    """Prompts (world objects: the true shape is their SDF)."""
    methods: tuple[str, ...] = ("sds", "lmc-sds", "esd", "vsd")
    """Methods, each at its defaults."""
    seeds: tuple[int, ...] = (0, 1)
    """Seeds per (method, prompt)."""
    steps: int = 600
    """Training steps of these runs: the fast preset's, what a user gets (0: the evaluation's --steps)."""


@dataclass
class EvalConfig:
    """What to evaluate; every leaf is a flag of ``scripts/evaluate.py`` (``--janus.lams 0,0.5,1``)."""

    suites: tuple[str, ...] = DEFAULT_SUITES
    """Suites to run, comma-separated: recognition, janus, fidelity, diversity, geometry (janus and geometry
    only when named)."""
    methods: tuple[str, ...] = ("sds", "lmc-sds", "esd", "vsd")
    """Methods of the recognition suite."""
    prompts: tuple[str, ...] = ("a red cube", "a snowman", "a red house")
    """Prompts of the recognition suite."""
    seeds: tuple[int, ...] = (0, 1)
    """Seeds of the recognition suite."""
    steps: int = 250
    """Training steps of every run (the fast preset's 600 would not fit the budget)."""
    render_size: int = 64
    """Training render size in pixels."""
    n_samples: int = 0
    """Samples per ray while training (0: the preset's)."""
    compile_grid: bool = True
    """torch.compile the hash grid (false: eager; cheaper for very short runs)."""
    preset: str = "fast"
    """Engine preset the runs start from."""
    device: str = "auto"
    """Device of the runs: auto, cpu, cuda, cuda:N."""
    set: tuple[str, ...] = ()
    """Settings of every run beyond the preset's, as dotted KEY=VALUE pairs, comma-separated (e.g.
    guidance.guidance_scale=30); a VALUE is read as JSON (30, 0.5, true), else kept as a string. A changed
    setting changes the runs' cache keys, so runs with and without it never mix."""
    views: ViewConfig = field(default_factory=ViewConfig)
    """Evaluation turntable."""
    janus: JanusSuite = field(default_factory=JanusSuite)
    """Janus suite settings."""
    fidelity: FidelitySuite = field(default_factory=FidelitySuite)
    """Fidelity suite settings."""
    diversity: DiversitySuite = field(default_factory=DiversitySuite)
    """Diversity suite settings."""
    geometry: GeometrySuite = field(default_factory=GeometrySuite)
    """Geometry suite settings."""

    @classmethod
    def quick(cls) -> EvalConfig:
        """One prompt, 3 steps at 32², 8 small views: every suite end to end in well under a minute."""
        return cls(
            suites=("recognition", "janus", "fidelity", "diversity"),
            prompts=("a snowman",),
            seeds=(0,),
            steps=3,
            render_size=32,
            n_samples=16,
            compile_grid=False,
            views=ViewConfig(n=8, size=32),
            janus=JanusSuite(
                prompts=("a snowman",), methods=("sds", "vsd"), lams=(1.0,), seeds=(0,), steps=0
            ),
            fidelity=FidelitySuite(scales=(10.0, 100.0), prompts=("a snowman",)),
            diversity=DiversitySuite(prompts=("a snowman",), seeds=(0, 1)),
            geometry=GeometrySuite(prompts=("a snowman",), methods=("sds",), seeds=(0,), steps=0),
        )

    def validate(self) -> None:
        """Raise ValueError naming the first setting the evaluation cannot run with."""
        bad = [s for s in self.suites if s not in SUITE_NAMES]
        if bad or not self.suites:
            raise ValueError(f"unknown or no suite(s) {bad}: choose from {', '.join(SUITE_NAMES)}")
        for methods in (self.methods, self.fidelity.methods, self.diversity.methods, self.geometry.methods):
            bad = [m for m in methods if m not in METHODS]
            if bad or not methods:
                raise ValueError(f"unknown or no method(s) {bad}: choose from {', '.join(METHODS)}")
        for prompts in (self.prompts, self.fidelity.prompts, self.diversity.prompts, self.geometry.prompts):
            if not prompts:
                raise ValueError("every suite needs at least one prompt")
            for p in prompts:
                spec_for_prompt(p)
        j = self.janus
        flat = [p for p in j.prompts if not spec_for_prompt(p).has_front]
        if flat or not j.prompts:
            raise ValueError(
                f"the janus suite needs prompts of objects with a front (a snowman, a … house), not {flat}"
            )
        bad = [m for m in j.methods if m not in METHODS]
        if bad or not (j.methods or j.lams):
            raise ValueError(f"unknown or no janus method(s) {bad}: choose from {', '.join(METHODS)}")
        if not j.seeds or j.steps < 0:
            raise ValueError("the janus suite needs at least one seed and steps >= 0")
        if not 0.0 < j.min_front_rate <= 1.0 or not 0.0 < j.confidence < 1.0:
            raise ValueError("janus.min-front-rate must lie in (0, 1] and janus.confidence in (0, 1)")
        if not 0.0 < j.front_half_angle < 90.0 or not 0.0 < j.back_half_angle < 90.0:
            raise ValueError("janus.front-half-angle and janus.back-half-angle must lie in (0°, 90°)")
        if len(set(self.diversity.seeds)) < 2:
            raise ValueError("the diversity suite needs at least two distinct seeds")
        if not self.seeds or not self.fidelity.seeds or not self.fidelity.scales:
            raise ValueError("seeds and fidelity scales must not be empty")
        if any(not 0.0 <= lam <= 1.0 for lam in self.janus.lams):
            raise ValueError(f"ESD λ must lie in [0, 1] (got {self.janus.lams})")
        if not self.geometry.seeds or self.geometry.steps < 0:
            raise ValueError("the geometry suite needs at least one seed and steps >= 0")
        if self.steps < 1 or self.render_size < 8 or self.janus.min_run < 1:
            raise ValueError("steps and janus.min-run must be >= 1 and render-size >= 8")
        self.views.validate()
        self.extra_settings()

    def extra_settings(self) -> dict[str, Any]:
        """``set`` as {dotted path: value}; a pair without ``=``, or a path that the run config of some
        method these suites train lacks (``guidance.lam`` is ESD's), is an error naming it."""
        from engine.config import RunConfig, set_path
        from engine.guidance import method_config

        suites = (self.janus, self.fidelity, self.diversity, self.geometry)
        methods = {*self.methods, *(m for suite in suites for m in suite.methods)}
        out: dict[str, Any] = {}
        for pair in self.set:
            key, sep, text = pair.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set {pair!r} is not KEY=VALUE (e.g. --set guidance.guidance_scale=30)")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            for method in sorted(methods):  # unknown paths fail here, before any run
                set_path(RunConfig(prompt="-", guidance=method_config(method)), key.strip(), value)
            out[key.strip()] = value
        return out

    def run_settings(self) -> RunSettings:
        """The dotted overrides every run shares (over the preset and the built-in prior's tuning)."""
        over: dict[str, Any] = {
            "train.steps": self.steps,
            "train.render_size": self.render_size,
            "train.device": self.device,
            "field.grid.compile": self.compile_grid,
        }
        if self.n_samples:
            over["renderer.n_samples"] = self.n_samples
        over.update(self.extra_settings())
        return RunSettings(prior="builtin", preset=self.preset, overrides=over)


__all__ = [
    "DEFAULT_SUITES",
    "GEOMETRY_PROMPTS",
    "JANUS_PROMPTS",
    "SUITE_NAMES",
    "DiversitySuite",
    "EvalConfig",
    "FidelitySuite",
    "GeometrySuite",
    "JanusSuite",
]
