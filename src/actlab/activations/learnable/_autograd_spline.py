"""The splines' autograd functions: a piecewise polynomial on uniform segments
(``PiecewiseFn``) and the linear and cubic splines taking their knot values.

As in ``_autograd``: each saves its input and the small parameter tensors,
float32 CPU calls with a contiguous input run the fused C++ kernels of
``_kernels`` (``_kernels_spline*.cpp``), and the PyTorch code here is the
reference and the path for every other case, double backward included.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.activations.learnable._sharing import bcast


class PiecewiseFn(torch.autograd.Function):
    """A piecewise polynomial on uniform segments with linear extrapolation.

    ``table`` (C, S, m) holds each segment's coefficients in the local
    variable t in [0, 1]; ``u = x * inv_h + offset`` is x in segment units.
    Beyond the outer segments the function continues with its end slope.
    Lookups are 1-D ``index_select``s, one per coefficient: on CPU they are
    ~10x faster than indexing (C*S, m) rows.
    """

    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> Tensor:
        ctx.save_for_backward(x, table, inv_h, offset)
        if _kernels.usable(x, table, inv_h, offset):
            return _kernels.piecewise_forward(x, table, inv_h, offset)
        flat, t, tc = _locate(x, table, inv_h, offset)
        return _horner(_lookup(table, flat, x), tc, t, deriv=False)[0]

    @staticmethod
    def backward(ctx, g: Tensor):
        x, table, inv_h, offset = ctx.saved_tensors
        if not torch.is_grad_enabled() and _kernels.usable(x, table, inv_h, offset):
            return *_kernels.piecewise_backward(g, x, table, inv_h, offset), None, None
        # inv_h and offset belong to the grid, which is set by calibration, not learnt.
        return *_piecewise_grads(g, x, table, inv_h, offset), None, None


class LinearSplineFn(torch.autograd.Function):
    """The linear spline with knot values (C, K) on grids [lo, hi] (C,): PiecewiseFn's
    m = 2 case, taking the values themselves so that a call costs no small ops
    (the kernels build slopes and offsets inside and return the values' gradient).
    """

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        return _values_forward(ctx, _linear_table, _kernels.linear_spline_forward, x, values, lo, hi)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _values_backward(ctx, g, _linear_table, _kernels.linear_spline_backward, _linear_values_grad)


class CubicSplineFn(torch.autograd.Function):
    """The cubic B-spline with coefficients (C, K) on grids [lo, hi] (C,): PiecewiseFn on
    ``cubic_table(values)``, taking the coefficients themselves like LinearSplineFn (the
    kernels build the table inside and return the coefficients' gradient).
    """

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        return _values_forward(ctx, _cubic_grid, _kernels.cubic_spline_forward, x, values, lo, hi)

    @staticmethod
    def backward(ctx, g: Tensor):
        return _values_backward(ctx, g, _cubic_grid, _kernels.cubic_spline_backward, _cubic_values_grad)


def _values_forward(ctx, grid: Callable, kernel: Callable, x: Tensor, values: Tensor, lo: Tensor,
                    hi: Tensor) -> Tensor:
    """A spline on its knot values: the kernel, or ``grid``'s segment table through PiecewiseFn's formula."""
    ctx.save_for_backward(x, values, lo, hi)
    ctx.kernel = _kernels.usable(x, values, lo, hi)
    if ctx.kernel:
        return kernel(x, values, lo, hi)
    table, inv_h, offset = grid(values, lo, hi)
    flat, t, tc = _locate(x, table, inv_h, offset)
    return _horner(_lookup(table, flat, x), tc, t, deriv=False)[0]


def _values_backward(ctx, g: Tensor, grid: Callable, kernel: Callable, values_grad: Callable):
    """The kernel's gradients, or the table's mapped back to the values by ``values_grad``."""
    x, values, lo, hi = ctx.saved_tensors
    if ctx.kernel and _cpp.kernels_enabled() and not torch.is_grad_enabled():
        return *kernel(g, x, values, lo, hi), None, None
    table, inv_h, offset = grid(values, lo, hi)
    gx, gtable = _piecewise_grads(g, x, table, inv_h, offset)
    return gx, values_grad(gtable, values), None, None


def _linear_values_grad(gtable: Tensor, values: Tensor) -> Tensor:
    # table[i] = (v[i], v[i+1] - v[i]): v[i] gets gtable[i, 0] - gtable[i, 1], v[i+1] gets gtable[i, 1].
    return (torch.nn.functional.pad(gtable[..., 0] - gtable[..., 1], (0, 1))
            + torch.nn.functional.pad(gtable[..., 1], (1, 0)))


def _cubic_values_grad(gtable: Tensor, values: Tensor) -> Tensor:
    # table[i, q] = sum_p v[i + p] M[p, q]: v[i + p] gets sum_q gtable[i, q] M[p, q].
    k, m = values.shape[1], _CUBIC.to(gtable)
    return sum(torch.nn.functional.pad((gtable * m[p]).sum(-1), (p, k - gtable.shape[1] - p)) for p in range(4))


# Uniform cubic B-spline on one segment: weight of c[j + p] is sum_q M[p, q] t^q.
_CUBIC = torch.tensor([[1.0, -3.0, 3.0, -1.0],
                       [4.0, 0.0, -6.0, 3.0],
                       [1.0, 3.0, 3.0, -3.0],
                       [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64) / 6.0


def cubic_table(values: Tensor) -> Tensor:
    """(C, S, 4) per-segment polynomial coefficients in t from B-spline coefficients (C, K)."""
    # a broadcast sum, not a matmul, which autocast would run in bfloat16
    return (values.unfold(1, 4, 1).unsqueeze(-1) * _CUBIC.to(values)).sum(-2)


def _cubic_grid(values: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(C, K-3, 4) segment table, inv_h and offset of a cubic spline."""
    inv_h = (values.shape[1] - 3) / (hi - lo)
    return cubic_table(values), inv_h, -lo * inv_h


def _linear_table(values: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(C, K-1, 2) segment table (value, slope), inv_h and offset of a linear spline."""
    inv_h = (values.shape[1] - 1) / (hi - lo)
    return torch.stack([values[:, :-1], values[:, 1:] - values[:, :-1]], -1), inv_h, -lo * inv_h


def _piecewise_grads(g: Tensor, x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    """The reference gradients of PiecewiseFn with respect to x and table (differentiable)."""
    c, s, m = table.shape
    flat, t, tc = _locate(x, table, inv_h, offset)
    _, slope = _horner(_lookup(table, flat, x, first=1), tc, t, deriv=True)
    gx = g * slope.mul_(bcast(inv_h, x))
    # d f / d table[j, p] = tc^p + p tc^(p-1) (t - tc): the segment term plus its tail.
    gtable = torch.zeros(m, c * s, dtype=table.dtype, device=table.device)
    gtable[0].index_add_(0, flat, g.reshape(-1))
    excess = t - tc if m > 2 else None
    gpow = g
    for p in range(1, m):
        term = gpow * t if excess is None else gpow * torch.add(tc, excess, alpha=p)
        gtable[p].index_add_(0, flat, term.reshape(-1))
        if p + 1 < m:
            gpow = gpow * tc
    return gx, gtable.t().reshape(c, s, m)


def _locate(x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Flat table index (segment + unit * S), local t, and t clamped to the segment."""
    c, s, m = table.shape
    u = torch.addcmul(bcast(offset, x), x, bcast(inv_h, x))
    # truncation of a non-negative number is floor; a NaN (whose .long() is INT64_MIN) reads
    # segment 0 and stays NaN through t
    idx = u.clamp(0.0, s - 1.0).nan_to_num_(0.0).long()
    t = u.sub_(idx)
    # Linear segments extrapolate by themselves; higher orders use the tangent at the end.
    tc = t if m == 2 else t.clamp(0.0, 1.0)
    if c > 1:
        idx = idx.add_(bcast(torch.arange(c, device=x.device) * s, x))
    return idx.reshape(-1), t, tc


def _lookup(table: Tensor, flat: Tensor, x: Tensor, first: int = 0) -> list[Tensor]:
    c, s, m = table.shape
    cols = table.reshape(c * s, m).t().contiguous()
    return [x.new_zeros(())] * first + [cols[p].index_select(0, flat).view(x.shape) for p in range(first, m)]


def _horner(cols: list[Tensor], tc: Tensor, t: Tensor, deriv: bool) -> tuple[Tensor, Tensor | None]:
    """Value (with tail) and optionally d/dt of sum_p cols[p] tc^p (cols[0] unused for deriv)."""
    m = len(cols)
    if m == 2:
        return (torch.addcmul(cols[0], cols[1], flat_tail(cols[1], t)) if not deriv else cols[1]), cols[1]
    der = cols[m - 1] * (m - 1)
    if deriv:
        for p in range(m - 2, 0, -1):
            der = der.mul_(tc).add_(cols[p], alpha=p)
        return der, der
    val = cols[m - 1].clone()
    for p in range(m - 2, -1, -1):
        val = val.mul_(tc).add_(cols[p])
        if p > 0:
            der = der.mul_(tc).add_(cols[p], alpha=p)
    return val.addcmul_(der, flat_tail(der, t - tc)), None


def flat_tail(slope: Tensor, excess: Tensor) -> Tensor:
    """The excess beyond the range, clamped to [-1, 1] where the tail is flat: slope * excess
    is then 0 at x = +-inf (not 0 * inf = NaN); NaN stays NaN, and non-flat tails are untouched."""
    return torch.where(slope == 0, excess.clamp(-1.0, 1.0), excess)
