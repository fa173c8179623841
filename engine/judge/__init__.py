"""The judge: a small image classifier of the procedural world (object class, colour, front visible).

It is our offline analogue of CLIP R-precision and a Janus detector: renders of a generated asset are
classified, and the verdicts are compared with the prompt. Trained by ``scripts/train_judge.py`` on
``engine.world`` renders (with blur/noise augmentation so NeRF renders are in-distribution), shipped as
``engine/judge/judge.safetensors`` with a model card.

Input: RGB in [0, 1], any square size (resized to 64); output logits for class, colour and front.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

JUDGE_DIR = Path(__file__).resolve().parent
WEIGHTS = JUDGE_DIR / "judge.safetensors"
META = JUDGE_DIR / "judge.json"
INPUT_SIZE = 64


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(8, cout),
        nn.SiLU(),
        nn.MaxPool2d(2),
    )


class Judge(nn.Module):
    """CNN: 64 → 32 → 16 → 8 → global pool; three linear heads."""

    def __init__(self, classes: list[str], colours: list[str], width: int = 32):
        super().__init__()
        self.classes, self.colours = list(classes), list(colours)
        w = width
        self.features = nn.Sequential(
            _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)
        )
        self.class_head = nn.Linear(4 * w, len(classes))
        self.colour_head = nn.Linear(4 * w, len(colours))
        self.front_head = nn.Linear(4 * w, 1)

    def forward(self, rgb: Float[Tensor, "B 3 H W"]) -> tuple[Tensor, Tensor, Tensor]:
        """(class logits [B, C], colour logits [B, K], front-visible logit [B])."""
        if rgb.shape[-1] != INPUT_SIZE or rgb.shape[-2] != INPUT_SIZE:
            rgb = F.interpolate(
                rgb, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False
            )
        h = self.features(rgb * 2 - 1).mean(dim=(2, 3))
        return self.class_head(h), self.colour_head(h), self.front_head(h).squeeze(-1)


@dataclass
class Verdict:
    """The judge's reading of one image."""

    cls: str
    colour: str
    front_visible: bool
    cls_prob: float
    colour_prob: float
    front_prob: float


def load_judge(path: Path | str = WEIGHTS, device: torch.device | str = "cpu") -> Judge:
    """The shipped judge (eval mode, frozen); a clear error when it has not been trained yet."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise FileNotFoundError(f"judge weights not found at {path}: run python scripts/train_judge.py")
    meta = json.loads(meta_path.read_text())
    judge = Judge(meta["classes"], meta["colours"], meta.get("width", 32))
    judge.load_state_dict(load_file(str(path)))
    return judge.to(device).eval().requires_grad_(False)


@torch.no_grad()
def judge_images(judge: Judge, rgb: Float[Tensor, "B 3 H W"]) -> list[Verdict]:
    cl, co, fr = judge(rgb.to(next(judge.parameters()).device).float())
    pc, pk, pf = cl.softmax(-1), co.softmax(-1), fr.sigmoid()
    out = []
    for i in range(rgb.shape[0]):
        c, k = int(pc[i].argmax()), int(pk[i].argmax())
        out.append(
            Verdict(
                judge.classes[c],
                judge.colours[k],
                bool(pf[i] > 0.5),
                float(pc[i, c]),
                float(pk[i, k]),
                float(pf[i]),
            )
        )
    return out
