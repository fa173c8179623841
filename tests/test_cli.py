"""engine/cli.py: flags from dataclass configs; comma-separated lists keep the spaces inside their elements."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.cli import OneLineParser, parse_config


@dataclass
class Demo:
    """A config with list, tuple and pair fields."""

    prompts: tuple[str, ...] = ("a red cube",)
    """Prompts."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds."""
    pair: tuple[float, float] = (0.0, 1.0)
    """A pair."""

    @classmethod
    def quick(cls) -> Demo:
        return cls(seeds=[7])

    def validate(self) -> None:
        if not self.prompts:
            raise ValueError("no prompts")


def parse(argv: list[str]) -> Demo:
    return parse_config(OneLineParser(prog="demo"), Demo, argv)[0]


def test_lists_split_on_commas_and_keep_inner_spaces():
    cfg = parse(
        ["--prompts", "a red cube, a snowman ,a blue house", "--seeds", "1, 2,3", "--pair", " 0.5 ,2"]
    )
    assert cfg.prompts == ("a red cube", "a snowman", "a blue house")
    assert cfg.seeds == [1, 2, 3] and cfg.pair == (0.5, 2.0)
    assert parse(["--quick"]).seeds == [7] and parse([]).prompts == ("a red cube",)


def test_bad_values_exit_2_in_one_line(capsys):
    for bad in (["--pair", "1,2,3"], ["--seeds", "1,x"], ["--prompts", ","]):
        with pytest.raises(SystemExit) as e:
            parse(bad)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err
