"""Recognition: does the judge read the prompt's object in every view of the asset?

Our offline analogue of CLIP R-precision. For an asset seen from V views with judge verdicts
(class ĉ_v, colour k̂_v) and the prompt's class c and colour k:

    class accuracy  = (1/V) Σ_v [ĉ_v = c],    colour accuracy = (1/V) Σ_v [k̂_v = k],
    accuracy (both) = (1/V) Σ_v [ĉ_v = c ∧ k̂_v = k].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from engine.judge import Verdict


@dataclass
class RecognitionScore:
    """Per-asset recognition accuracies, each in [0, 1]."""

    class_acc: float
    """Share of views whose judged class is the prompt's."""
    colour_acc: float
    """Share of views whose judged colour is the prompt's."""
    both_acc: float
    """Share of views where class and colour are both right."""
    n_views: int

    def to_dict(self) -> dict:
        return asdict(self)


def recognition_score(verdicts: Sequence[Verdict], cls: str, colour: str) -> RecognitionScore:
    """Accuracies of the judge's verdicts (one per view) against the prompt's ``cls`` and ``colour``."""
    if not verdicts:
        raise ValueError("recognition needs at least one view")
    n = len(verdicts)
    cls_ok = [v.cls == cls for v in verdicts]
    col_ok = [v.colour == colour for v in verdicts]
    return RecognitionScore(
        class_acc=sum(cls_ok) / n,
        colour_acc=sum(col_ok) / n,
        both_acc=sum(a and b for a, b in zip(cls_ok, col_ok)) / n,
        n_views=n,
    )


__all__ = ["RecognitionScore", "recognition_score"]
