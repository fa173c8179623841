"""tiny-cuda-nn's fused CUDA hash grid behind the :class:`HashGridEncoding` interface, and the check of
whether it can serve a device (``tinycudann`` is an optional dependency, imported only here)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from engine.fields.hashgrid_base import HashGridEncoding, initial_table

if TYPE_CHECKING:
    from engine.fields.hashgrid import HashGridConfig


class TcnnHashGrid(HashGridEncoding):
    """tiny-cuda-nn's fused CUDA hash grid (only built when ``tinycudann`` imports and the device is CUDA).

    tiny-cuda-nn places vertices with its own conventions (a half-cell offset and N_l = ceil(N_min b^l − 1) + 1),
    so its values are not bit-identical to :class:`TorchHashGrid`; the encoding is the same in kind and size.
    """

    def __init__(
        self,
        cfg: HashGridConfig,
        device: torch.device | str = "cuda",
        generator: torch.Generator | None = None,
    ):
        super().__init__(cfg)
        import tinycudann as tcnn

        growth = math.exp(
            (math.log(cfg.max_resolution) - math.log(cfg.base_resolution)) / max(cfg.n_levels - 1, 1)
        )
        with torch.cuda.device(torch.device(device)):
            self.encoding = tcnn.Encoding(
                n_input_dims=3,
                encoding_config={
                    "otype": "HashGrid",
                    "n_levels": cfg.n_levels,
                    "n_features_per_level": cfg.n_features_per_level,
                    "log2_hashmap_size": cfg.log2_hashmap_size,
                    "base_resolution": cfg.base_resolution,
                    "per_level_scale": growth,
                },
            )
        with torch.no_grad():
            params = self.encoding.params
            if generator is None:
                params.uniform_(-cfg.init_scale, cfg.init_scale)
            else:
                params.copy_(initial_table(tuple(params.shape), cfg.init_scale, params.device, generator))

    def forward(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N out_dim"]:
        """x in [0, 1]^3 (caller normalises scene bounds); output float32."""
        return self.encoding(x.to(torch.float32).clamp(0.0, 1.0).reshape(-1, 3)).float()


def tcnn_unavailable(device: torch.device) -> str | None:
    """Why tiny-cuda-nn cannot serve ``device``, or None when it can."""
    if device.type != "cuda":
        return f"the device is {device.type}, not CUDA"
    try:
        import tinycudann  # noqa: F401
    except Exception as err:  # ImportError, or a CUDA/ABI mismatch raised at import
        return f"tinycudann is not importable ({type(err).__name__}: {err})"
    return None
