"""The pure-torch hash grid, :class:`TorchHashGrid`: eager kernels anywhere, ``torch.compile``d ones where
Inductor works (the conventions it implements are in ``engine.fields.hashgrid``).

Owns the corner kernels, the process-wide cache of compiled kernels (``_KERNELS``, which falls back to eager
once if compilation fails), the autograd function with its hand-written backward, and the module.

Layout: the trainable table is one parameter ``embeddings`` of shape [L, T, F]; dense levels use only their first
(N_l + 1)^3 rows (the rest keep their initial values and get zero gradient).

Speed. ``python scripts/bench.py --suites hashgrid`` on a 2-core AMD EPYC VM (torch 2.13 CPU, 131k points,
L=16, F=2, T=2^17), forward+backward: compiled 1.0–1.5 Mpts/s (forward alone 4–5), eager 0.3–0.4, the naive
reference 0.09–0.14 (the VM is noisy; ranges are over runs). What makes the difference, each choice measured:

* level-major order: all points of one level are processed before the next, so the random reads and writes
  stay in that level's 1 MiB table (L2-resident) instead of wandering over all 16 MiB (4–5× on the scatter);
* a custom autograd function that saves only x (12 bytes per point) and recomputes the corners in backward;
* compiled forward: one fused loop over levels × points with the 8 corner reads unrolled (no buffers);
* compiled backward in two kernels: corner rows/weights [L, N, 8] on all threads, then a *single-threaded*
  scatter-add. Inductor emits atomic float adds whenever a scatter runs on several threads; on 2 cores that
  is ~2× slower than one thread with plain adds. (Revisit on many-core machines.)
* int32 row arithmetic whenever it cannot overflow (it halves the corner buffers). Hash products are reduced
  modulo T early: T is a power of two, so (j · p) mod T = (j · (p mod T)) mod T.
* T = 2^17 by default rather than instant-NGP's 2^19: a level's table then fits in L2; 2^19 measured 1.5×
  slower on CPU, 2^15 only ~5% faster than 2^17 at four times the collisions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from engine.fields.hashgrid_base import HASH_PRIMES, HashGridEncoding, initial_table, level_resolutions

if TYPE_CHECKING:
    from engine.fields.hashgrid import HashGridConfig

log = logging.getLogger(__name__)

_CHUNK = 2**17
"""Points per chunk where corner buffers are materialised (~1 KiB per point at L = 16): bounds the memory."""


# ---------------------------------------------------------------------------------------------------------
# Pure functions of the pure-torch grid. The per-level constants are tensors so one compiled graph serves
# every configuration with the same shapes:
#   scale  [L, 1]    float32   N_l
#   stride [3, L, 1] index     per-axis multiplier: (1, N_l+1, (N_l+1)^2) dense, (primes mod T) hashed
#   hashed [L, 1]    bool
#   offset [L, 1]    index     l · T (row of the level in the flattened [L·T, F] table)
# Corner k of a cell is (dx, dy, dz) = (k & 1, (k >> 1) & 1, k >> 2).
# ---------------------------------------------------------------------------------------------------------


def _corners_unrolled(
    x: Tensor, scale: Tensor, stride: Tensor, hashed: Tensor, offset: Tensor, mask: int
) -> list[tuple[Tensor, Tensor]]:
    """The 8 corners as (row [L, N], weight [L, N]), written out so Inductor fuses them into one loop."""
    pos = x.t().contiguous().unsqueeze(1) * scale  # [3, L, N], points innermost
    lo = torch.minimum(pos.floor(), scale - 1.0)
    w_hi = pos - lo
    a_lo = lo.to(stride.dtype) * stride
    a = tuple((a_lo[i], a_lo[i] + stride[i]) for i in range(3))
    w = tuple((1.0 - w_hi[i], w_hi[i]) for i in range(3))
    corners = []
    for k in range(8):
        dx, dy, dz = k & 1, (k >> 1) & 1, k >> 2
        ax, ay, az = a[0][dx], a[1][dy], a[2][dz]
        row = torch.where(hashed, (ax ^ ay ^ az) & mask, ax + ay + az) + offset
        corners.append((row, w[0][dx] * w[1][dy] * w[2][dz]))
    return corners


def _corners_stacked(
    x: Tensor, scale: Tensor, stride: Tensor, offset: Tensor, n_dense: int, mask: int
) -> tuple[Tensor, Tensor]:
    """All 8 corners at once by broadcasting (the eager path): rows [8, L, N] and weights [8, L, N].

    Corners are the outer dimension so every elementwise op runs along long contiguous rows of points.
    Dense levels come first (resolution grows with the level), so each kind of level is one slice.
    """
    pos = x.t().contiguous().unsqueeze(1) * scale  # [3, L, N]
    lo = torch.minimum(pos.floor(), scale - 1.0)
    n_levels, n = pos.shape[1], pos.shape[2]
    a = torch.empty(3, 2, n_levels, n, dtype=stride.dtype, device=x.device)  # [axis, low/high, L, N]
    w = torch.empty(3, 2, n_levels, n, dtype=pos.dtype, device=x.device)
    torch.mul(lo.to(stride.dtype), stride, out=a[:, 0])
    torch.add(a[:, 0], stride, out=a[:, 1])
    torch.sub(pos, lo, out=w[:, 1])
    torch.sub(1.0, w[:, 1], out=w[:, 0])
    rows = torch.empty(2, 2, 2, n_levels, n, dtype=a.dtype, device=x.device)  # [dz, dy, dx, L, N]
    if n_dense > 0:
        d = a[:, :, :n_dense]
        _cube(d[0] + offset[:n_dense], d[1], d[2], torch.add, out=rows[:, :, :, :n_dense])
    if n_dense < n_levels:
        h = a[:, :, n_dense:] & mask
        _cube(h[0] | offset[n_dense:], h[1], h[2], torch.bitwise_xor, out=rows[:, :, :, n_dense:])
    weights = _cube(w[0], w[1], w[2], torch.mul)
    return rows.view(8, n_levels, n), weights.view(8, n_levels, n)


def _cube(ax: Tensor, ay: Tensor, az: Tensor, op: Callable[..., Tensor], out: Tensor | None = None) -> Tensor:
    """[2, ...] low/high values per axis → op(op(az[dz], ay[dy]), ax[dx]) as [dz, dy, dx, ...]."""
    return op(op(az[:, None, None], ay[None, :, None]), ax[None, None, :], out=out)


def _gather_eager(rows: Tensor, weights: Tensor, table: Tensor) -> Tensor:
    """Forward without compile: [8, L, N] corners → [L, N, F] (embedding_bag fuses the weighted sum)."""
    n_levels, n = rows.shape[1], rows.shape[2]
    flat = table.view(-1, table.shape[-1])
    bags = rows.permute(1, 2, 0).reshape(-1, 8)
    out = F.embedding_bag(bags, flat, per_sample_weights=weights.permute(1, 2, 0).reshape(-1, 8), mode="sum")
    return out.view(n_levels, n, -1)


def _add_scatter_eager(rows: Tensor, weights: Tensor, grad_fln: Tensor, grad: Tensor) -> None:
    """Backward without compile: d(loss)/d(table) = Σ over corners of weight · grad, added at the corner's row.

    rows and weights are [8, L, N], grad_fln is the upstream gradient as [F, L, N]. One serial ``index_add_``
    per feature into a feature-major buffer: the fastest eager scatter measured.
    """
    n_features = grad.shape[-1]
    grad_fr = torch.zeros(n_features, grad.numel() // n_features, dtype=grad.dtype, device=grad.device)
    flat_rows = rows.reshape(-1)
    for f in range(n_features):
        grad_fr[f].index_add_(0, flat_rows, (weights * grad_fln[f]).reshape(-1))
    grad.view(-1, n_features).add_(grad_fr.t())


def _forward_fused(
    x: Tensor, table: Tensor, scale: Tensor, stride: Tensor, hashed: Tensor, offset: Tensor
) -> Tensor:
    """Compiled forward: one loop over levels × points with the 8 corner reads unrolled → [N, L·F]."""
    n_levels, table_size, n_features = table.shape
    flat = table.view(n_levels * table_size, n_features)
    out = None
    for rows, w in _corners_unrolled(x, scale, stride, hashed, offset, table_size - 1):
        term = flat[rows] * w.unsqueeze(-1)
        out = term if out is None else out + term
    assert out is not None
    return out.permute(1, 0, 2).reshape(x.shape[0], n_levels * n_features)


def _backward_corners(
    x: Tensor, grad_out: Tensor, scale: Tensor, stride: Tensor, hashed: Tensor, offset: Tensor, mask: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Compiled backward, part 1 (all threads): corner rows/weights [L, N, 8] and grad_out as [L, N, F].

    Corners innermost: the scatter then visits a point's 8 corners together, and they share cache lines.
    """
    corners = _corners_unrolled(x, scale, stride, hashed, offset, mask)
    rows = torch.stack([r for r, _ in corners], -1)
    weights = torch.stack([w for _, w in corners], -1)
    n_levels = scale.shape[0]
    grad_lnf = grad_out.view(x.shape[0], n_levels, -1).permute(1, 0, 2).contiguous()
    return rows, weights, grad_lnf


def _backward_scatter(rows: Tensor, weights: Tensor, grad_lnf: Tensor, grad: Tensor) -> None:
    """Compiled backward, part 2 (one thread, so Inductor emits plain adds instead of atomics): adds into grad."""
    grad.view(-1, grad.shape[-1]).index_put_(
        (rows,), weights.unsqueeze(-1) * grad_lnf.unsqueeze(-2), accumulate=True
    )


_FAILED = object()
"""What :meth:`_Kernels.run` returns when compilation is unavailable: the caller runs its eager kernel."""


class _Kernels:
    """The compiled forward/backward of the torch grid, built on first use.

    A kernel whose first call raises (no C++ compiler, unsupported Python, an Inductor bug) disables
    compilation for the whole process with one log line. After a kernel has run once, its errors are real
    errors and propagate.
    """

    _FUNCTIONS: dict[str, Callable[..., Any]] = {
        "forward": _forward_fused,
        "corners": _backward_corners,
        "scatter": _backward_scatter,
    }
    _OPTIONS: dict[str, dict[str, Any]] = {
        "forward": {},
        # Vectorising this kernel over levels makes each vector store hit 16 cache lines: scalar is 3× faster.
        "corners": {"cpp.simdlen": 1},
        # One thread: plain adds. Several threads: atomic float adds, 2× slower in total on 2 cores.
        "scatter": {"cpp.threads": 1},
    }
    _POINTS_DIMS: dict[str, tuple[int, ...]] = {"forward": (0,), "corners": (0, 0), "scatter": (1, 1, 1)}
    """Per kernel, the points dim of its leading tensor arguments: the only sizes compiled as symbolic."""

    def __init__(self) -> None:
        self.failed = False
        self._compiled: dict[str, Callable[..., Any]] = {}
        self._proven: set[str] = set()

    def run(self, name: str, *args: Any) -> Any:
        if self.failed:
            return _FAILED
        try:
            # One graph for every batch size; L, T and F stay constants (dynamic=False).
            for arg, dim in zip(args, self._POINTS_DIMS[name], strict=False):
                torch._dynamo.maybe_mark_dynamic(arg, dim)
            if name not in self._compiled:
                self._compiled[name] = torch.compile(
                    self._FUNCTIONS[name], dynamic=False, options=self._OPTIONS[name]
                )
            out = self._compiled[name](*args)
        except Exception as err:
            if name in self._proven:
                raise
            first_line = (str(err).strip().splitlines() or [""])[0]
            log.warning(
                "torch.compile of the hash grid failed (%s: %s); using eager kernels",
                type(err).__name__,
                first_line,
            )
            self.failed = True
            return _FAILED
        self._proven.add(name)
        return out


_KERNELS = _Kernels()


class _HashGridFunction(torch.autograd.Function):
    """Encoding with a hand-written backward: saves only x and recomputes the corners (saves ~1 KiB/point)."""

    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, grid: TorchHashGrid) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.grid = grid
        return grid._encode(x, table)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[None, Tensor | None, None]:  # type: ignore[override]
        if not ctx.needs_input_grad[1]:
            return None, None, None
        (x,) = ctx.saved_tensors
        grid: TorchHashGrid = ctx.grid
        return None, grid._table_grad(x, grad_out.contiguous()), None


class TorchHashGrid(HashGridEncoding):
    """Pure-torch grid: eager kernels anywhere, a fused ``torch.compile`` path where Inductor works."""

    def __init__(
        self,
        cfg: HashGridConfig,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ):
        super().__init__(cfg)
        n_levels, n_features = cfg.n_levels, cfg.n_features_per_level
        table_size = 2**cfg.log2_hashmap_size
        self.resolutions = level_resolutions(cfg)
        dense = [(r + 1) ** 3 <= table_size for r in self.resolutions]
        self.n_dense = sum(dense)
        """Levels indexed densely; they are the first ``n_dense`` (resolution grows with the level)."""
        # int32 row arithmetic is exact while every intermediate stays below 2^31: the largest is
        # (N_max + 1) · (T − 1) for hashed levels and L · T for the level offsets.
        fits32 = (max(self.resolutions) + 1) * table_size < 2**31 and n_levels * table_size < 2**31
        index_dtype = torch.int32 if fits32 else torch.int64
        strides = [
            (1, r + 1, (r + 1) ** 2) if d else tuple(p % table_size for p in HASH_PRIMES)
            for r, d in zip(self.resolutions, dense, strict=True)
        ]
        self.embeddings = nn.Parameter(
            initial_table((n_levels, table_size, n_features), cfg.init_scale, device, generator)
        )
        """The hash tables, [L, T, F]; level l's row r is ``embeddings[l, r]``."""
        self.register_buffer(
            "_scale",
            torch.tensor(self.resolutions, dtype=torch.float32, device=device).view(-1, 1),
            persistent=False,
        )
        self.register_buffer(
            "_stride",
            torch.tensor(strides, dtype=index_dtype, device=device).t().reshape(3, n_levels, 1).contiguous(),
            persistent=False,
        )
        self.register_buffer(
            "_hashed", torch.tensor([not d for d in dense], device=device).view(-1, 1), persistent=False
        )
        self.register_buffer(
            "_offset",
            (torch.arange(n_levels, dtype=index_dtype, device=device) * table_size).view(-1, 1),
            persistent=False,
        )

    @property
    def table_size(self) -> int:
        """T, rows per level."""
        return self.embeddings.shape[1]

    def extra_repr(self) -> str:
        cfg = self.cfg
        return (
            f"levels={cfg.n_levels}, features={cfg.n_features_per_level}, table_size=2^{cfg.log2_hashmap_size}, "
            f"resolutions={self.resolutions[0]}..{self.resolutions[-1]}, dense_levels={self.n_dense}, "
            f"compile={cfg.compile}"
        )

    def forward(self, x: Float[Tensor, "N 3"]) -> Float[Tensor, "N out_dim"]:
        """x in [0, 1]^3 (caller normalises scene bounds); output float32."""
        if x.ndim != 2 or x.shape[-1] != 3:
            raise ValueError(f"hash grid expects points of shape [N, 3], got {tuple(x.shape)}")
        # No gradient flows to x. NaN would index outside the table, so it maps to 0 like any stray point.
        x = x.detach().to(device=self.embeddings.device, dtype=torch.float32)
        x = torch.nan_to_num(x, nan=0.0).clamp_(0.0, 1.0).contiguous()
        if x.shape[0] == 0:
            return x.new_zeros(0, self.out_dim)
        return _HashGridFunction.apply(x, self.embeddings, self)

    def _level_constants(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self._scale, self._stride, self._hashed, self._offset

    def _encode(self, x: Tensor, table: Tensor) -> Tensor:
        """Forward of the autograd function: [N, L·F]."""
        if self.cfg.compile and x.shape[0] > 1:
            out = _KERNELS.run("forward", x, table, *self._level_constants())
            if out is not _FAILED:
                return out
        chunks = [self._encode_eager(xc, table) for xc in x.split(_CHUNK)]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def _encode_eager(self, x: Tensor, table: Tensor) -> Tensor:
        rows, weights = _corners_stacked(
            x, self._scale, self._stride, self._offset, self.n_dense, self.table_size - 1
        )
        return _gather_eager(rows, weights, table).permute(1, 0, 2).reshape(x.shape[0], self.out_dim)

    def _table_grad(self, x: Tensor, grad_out: Tensor) -> Tensor:
        """Backward of the autograd function: d(loss)/d(embeddings), accumulated over chunks of points."""
        grad = torch.zeros_like(self.embeddings)
        for xc, gc in zip(x.split(_CHUNK), grad_out.split(_CHUNK), strict=True):
            self._add_table_grad(xc, gc, grad)
        return grad

    def _add_table_grad(self, x: Tensor, grad_out: Tensor, grad: Tensor) -> None:
        if self.cfg.compile and x.shape[0] > 1:
            mask = self.table_size - 1
            corners = _KERNELS.run("corners", x, grad_out, *self._level_constants(), mask)
            if corners is not _FAILED:
                rows, weights, grad_lnf = corners
                if _KERNELS.run("scatter", rows, weights, grad_lnf, grad) is not _FAILED:
                    return
        rows, weights = _corners_stacked(
            x, self._scale, self._stride, self._offset, self.n_dense, self.table_size - 1
        )
        grad_fln = grad_out.view(x.shape[0], self.cfg.n_levels, -1).permute(2, 1, 0).contiguous()
        _add_scatter_eager(rows, weights, grad_fln, grad)
