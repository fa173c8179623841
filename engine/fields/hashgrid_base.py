"""What every hash-grid implementation shares: the spatial-hash primes, the level resolutions, the check of a
:class:`~engine.fields.hashgrid.HashGridConfig` and the :class:`HashGridEncoding` interface.

The conventions themselves are described in ``engine.fields.hashgrid``, which users import; this module
exists so that the implementations (``hashgrid_torch``, ``hashgrid_tcnn``) can build on the interface
without importing the module that selects between them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor, nn

if TYPE_CHECKING:
    from engine.fields.hashgrid import HashGridConfig

HASH_PRIMES = (1, 2654435761, 805459861)
"""Per-axis multipliers of the spatial hash (instant-NGP)."""


def level_resolutions(cfg: HashGridConfig) -> list[int]:
    """N_l = floor(N_min · b^l + 1e-6) for l = 0..L-1 (see ``engine.fields.hashgrid``)."""
    if cfg.n_levels == 1:
        return [cfg.base_resolution]
    growth = math.exp((math.log(cfg.max_resolution) - math.log(cfg.base_resolution)) / (cfg.n_levels - 1))
    return [math.floor(cfg.base_resolution * growth**level + 1e-6) for level in range(cfg.n_levels)]


def initial_table(
    shape: tuple[int, ...], scale: float, device: torch.device | str, generator: torch.Generator | None
) -> Tensor:
    """Table entries U(-scale, scale) (instant-NGP). With a ``generator`` they are drawn on the CPU from it
    and then moved, so the same seed gives the same table on every device and no other run's draws from
    torch's global generator (another job on another thread) can change them. Without one: the global
    generator of ``device``, as before generators were passed in."""
    if generator is None:
        return torch.empty(shape, device=device).uniform_(-scale, scale)
    return torch.empty(shape).uniform_(-scale, scale, generator=generator).to(device)


class HashGridEncoding(nn.Module):
    """Interface shared by the implementations: ``forward`` maps [N, 3] points in [0, 1]^3 to [N, out_dim]."""

    def __init__(self, cfg: HashGridConfig):
        super().__init__()
        cfg.validate()  # its bounds and rules (engine.configbase.Config)
        self.cfg = cfg

    @property
    def out_dim(self) -> int:
        """L · F."""
        return self.cfg.n_levels * self.cfg.n_features_per_level

    def forward(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N out_dim"]:
        """x in [0, 1]^3 (caller normalises scene bounds); output float32."""
        raise NotImplementedError
