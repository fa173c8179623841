"""Text-to-3D engine: score-distillation NeRF optimisation with diffusion priors."""

import os as _os

# Transparent huge pages for torch's CPU allocator: measured ~2x faster hash-grid fwd+bwd on our CPUs.
# It only takes effect if set before torch allocates, so it lives at the very top of the package.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
