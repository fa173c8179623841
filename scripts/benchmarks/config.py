"""What ``scripts/bench.py`` measures and how long: one dataclass per suite and the ``BenchConfig`` that holds
them. Every leaf field is a flag whose help is the field's docstring; ``BenchConfig.quick()`` gives the tiny
sizes that only check the pipeline, and ``validate()`` refuses settings a suite cannot run with.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from engine.config import PRESETS
from engine.guidance import METHODS


@dataclass
class HashgridBench:
    """Hash-grid throughput (default grid config, uniform random points)."""

    points: int = 2**17
    """Points per batch."""
    repeats: int = 5
    """Timed calls per measurement (median reported)."""


@dataclass
class SdsBench:
    """SDS steps/s with a tiny random 32 px pixel prior."""

    sizes: list[int] = field(default_factory=lambda: [32, 64])
    """Render sizes in pixels (comma-separated)."""
    steps: int = 40
    """Timed training steps per size."""
    warmup: int = 10
    """Untimed steps first (compile, occupancy settling)."""
    compile: bool = True
    """torch.compile the hash grid (false: eager)."""


@dataclass
class IterationBench:
    """Step time per method with the built-in prior, and the overhead ratio."""

    render_size: int = 0
    """Render size in pixels (0: the preset's, 64 for fast)."""
    preset: str = "fast"
    """Settings preset of the runs."""
    warmup: int = 16
    """Untimed steps per method first (the first one compiles the hash grid)."""
    rounds: int = 5
    """Round-robin rounds; each times one block of steps and the pieces of every method."""
    block: int = 16
    """Steps per timed block. 16 = the occupancy grid's update_every: every block holds exactly one
    occupancy update, so the block's time per step is the amortised step time."""
    piece_repeats: int = 3
    """Timed calls of each piece (prior CFG forward, render forward+backward) per method and round."""
    compile: bool = True
    """torch.compile the hash grid, as a run does by default (false: eager)."""


@dataclass
class RegularizerBench:
    """Per-step cost of each geometry regulariser (SDS, built-in prior)."""

    render_size: int = 0
    """Render size in pixels (0: the fast preset's, 64)."""
    warmup: int = 16
    """Untimed steps per variant first (the first one compiles the hash grid)."""
    rounds: int = 5
    """Round-robin rounds; each times one block of steps of every variant."""
    block: int = 16
    """Steps per timed block (16: one occupancy update per block, as in the iteration suite)."""
    compile: bool = True
    """torch.compile the hash grid, as a run does by default (false: eager)."""


@dataclass
class PreviewBench:
    """Submit → first preview event on a warm ``python -m engine.serve`` (the add-on's live view)."""

    prompt: str = "a red cube"
    """Prompt of the jobs."""
    method: str = "sds"
    """Method of the jobs."""
    preset: str = "fast"
    """Preset of the jobs."""
    steps: int = 600
    """Steps each job asks for (it is cancelled at its first preview)."""
    jobs: int = 3
    """Timed jobs after the warm-up job (median reported)."""
    tiny: bool = False
    """Tiny runs (the test suite's fast options: 32² renders, eager hash grid): checks the pipeline only."""


@dataclass
class E2EBench:
    """``python -m engine.generate`` per method, as a subprocess."""

    prompt: str = "a red cube"
    """Prompt of every run."""
    preset: str = "fast"
    """Settings preset of the runs."""
    flags: str = ""
    """Extra engine.generate flags for every run, one shell-quoted string (e.g. "--steps 200")."""
    keep: str = ""
    """Folder to keep the assets and run folders in (empty: a temporary folder, deleted afterwards)."""


@dataclass
class BenchConfig:
    """What to measure and how long; every leaf is a flag (``--iteration.rounds 3``)."""

    suites: list[str] = field(
        default_factory=lambda: ["hashgrid", "sds", "iteration", "regularizers", "e2e", "preview"]
    )
    """Suites to run, comma-separated: hashgrid, sds, iteration, regularizers, e2e, preview."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Guidance methods of the iteration and e2e suites, comma-separated."""
    hashgrid: HashgridBench = field(default_factory=HashgridBench)
    sds: SdsBench = field(default_factory=SdsBench)
    iteration: IterationBench = field(default_factory=IterationBench)
    regularizers: RegularizerBench = field(default_factory=RegularizerBench)
    e2e: E2EBench = field(default_factory=E2EBench)
    preview: PreviewBench = field(default_factory=PreviewBench)

    @classmethod
    def quick(cls) -> BenchConfig:
        """Tiny sizes and step counts, eager hash grid outside the hashgrid suite (one compile in all): the
        whole run takes under a minute on a quiet 2-core CPU. The numbers only check the pipeline (the test
        runs this)."""
        return cls(
            hashgrid=HashgridBench(points=2**14, repeats=3),
            sds=SdsBench(sizes=[32], steps=3, warmup=2, compile=False),
            iteration=IterationBench(
                render_size=32, warmup=1, rounds=5, block=1, piece_repeats=1, compile=False
            ),
            regularizers=RegularizerBench(render_size=32, warmup=1, rounds=3, block=1, compile=False),
            e2e=E2EBench(
                flags="--steps 2 --render-size 32 --renderer.n-samples 32 --field.grid.compile false "
                "--field.grid.n-levels 8 --field.grid.log2-hashmap-size 14 --mesh-resolution 32 "
                "--export.texture-size 128 --export.turntable-views 2 --export.turntable-size 64"
            ),
            preview=PreviewBench(steps=30, jobs=1, tiny=True),
        )

    def validate(self) -> None:
        """Raise ValueError naming the first setting the benchmark cannot run with."""
        from scripts.benchmarks import SUITES  # here, not at the top: the suites import this module

        for name, given, allowed in (("suite", self.suites, SUITES), ("method", self.methods, METHODS)):
            bad = [x for x in given if x not in allowed]
            if bad or not given:
                raise ValueError(f"unknown or no {name}(s) {bad}: choose from {', '.join(allowed)}")
        for path in (
            "hashgrid.points",
            "hashgrid.repeats",
            "sds.steps",
            "iteration.rounds",
            "iteration.block",
            "regularizers.rounds",
            "regularizers.block",
        ):
            obj, leaf = getattr(self, path.split(".")[0]), path.split(".")[1]
            if getattr(obj, leaf) < 1:
                raise ValueError(f"--{path.replace('_', '-')} must be >= 1 (got {getattr(obj, leaf)})")
        if self.iteration.piece_repeats < 1 or not self.sds.sizes:
            raise ValueError("--iteration.piece-repeats must be >= 1 and --sds.sizes non-empty")
        for name, preset in (("iteration", self.iteration.preset), ("e2e", self.e2e.preset)):
            if preset not in PRESETS:
                raise ValueError(f"--{name}.preset {preset!r}: choose one of {', '.join(PRESETS)}")
        shlex.split(self.e2e.flags)  # unbalanced quotes: ValueError now, not after the other suites
