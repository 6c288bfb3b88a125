"""Memory-lean autograd kernels for slaf and spline (rational: ``_autograd_rational``).

Each ``torch.autograd.Function`` saves only its input ``x`` and the small
parameter tensors; ``backward`` recomputes what it needs. Plain autograd
would keep every intermediate of a degree-k polynomial (k full-size tensors
per site); here a site costs one saved tensor, like ReLU's saved output.
Parameters arrive per unit as ``(C, ...)``; see ``_sharing``.

float32 CPU calls with a contiguous input run the fused C++ kernels of
``_kernels`` (one pass forward, one backward); the PyTorch code below is the
reference, and the path for every other case, double backward included (the
kernels' backward is not differentiable; grad mode is on in ``backward`` only
under ``create_graph=True``). Whether the kernels run is decided once per call,
in ``forward`` (``ctx.kernel``); ``backward`` takes them too unless they were
switched off in between. Its Python loops run over the degree (a handful of
iterations), never over elements.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.activations.learnable._sharing import bcast, reduce_product, reduce_units
from actlab.activations.learnable.bases import BASES


class _TraceContext:
    """Stands in for a Function's ctx when its forward runs as plain code: nothing is saved."""

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        pass


def run(fn: type[torch.autograd.Function], *args: object) -> Tensor:
    """``fn.apply(*args)``; under ``torch.jit.trace`` its forward as plain code.

    A traced ``apply`` is an opaque Python call (``prim::PythonOp``) that
    ``torch.jit.save`` cannot store; the forward itself records the reference
    path's torch ops (``_kernels.usable`` is False while tracing or exporting).
    """
    if torch.jit.is_tracing():
        return fn.forward(_TraceContext(), *args)
    return fn.apply(*args)


def _axpy(acc: Tensor | None, a: Tensor, phi: Tensor | float) -> Tensor | None:
    """acc + a * phi, where phi may be a Python float (a constant basis term)."""
    if isinstance(phi, float):
        if phi == 0.0:
            return acc
        return a * phi if acc is None else acc + a * phi
    return a * phi if acc is None else torch.addcmul(acc, a, phi)


class SlafFn(torch.autograd.Function):
    """f(x) = sum_k a_k phi_k(zc) + tail(z) [+ w relu(x)], z = x / range, a = coef * scale.

    The product a = coef * scale is taken inside (by the kernels too), so that a call adds
    one autograd node, not two; the kernels' plan is found once, in forward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, coef: Tensor, scale: Tensor, w: Tensor | None, dends: Tensor, inv_range: float,
                basis_name: str) -> Tensor:
        ctx.save_for_backward(x, coef, scale, w, dends)
        plan = _kernels.slaf_plan(basis_name, coef.shape[1])
        ctx.inv_range, ctx.basis_name, ctx.plan = inv_range, basis_name, plan
        ctx.kernel = plan is not None and _kernels.usable(x, coef, scale, w, dends)
        if ctx.kernel:
            return _kernels.slaf_forward(x, coef, scale, w, dends, inv_range, plan)
        a = coef * scale
        basis, n = BASES.get(basis_name), a.shape[1]
        z = x * inv_range
        zc = z if basis.periodic else z.clamp(-1.0, 1.0)
        acc = None
        for k, (phi, _) in enumerate(basis.terms(zc, n, deriv=False)):
            acc = _axpy(acc, bcast(a[:, k], x), phi)
        assert acc is not None
        if not basis.periodic:
            # (C, 2): the end slopes p'(-1), p'(+1); a broadcast sum, not a matmul, which autocast
            # would run in bfloat16
            slopes = (a.unsqueeze(1) * dends).sum(-1)
            if w is not None:  # beyond the range w relu(x) joins the upper tail: x = +inf meets no inf - inf
                slopes = slopes + torch.stack([torch.zeros_like(w), w / inv_range], 1)
            excess = z.sub_(zc)  # z is not needed any more
            s_lo, s_hi = bcast(slopes[:, 0], x), bcast(slopes[:, 1], x)
            acc = acc.addcmul(flat_tail(s_hi, excess.clamp_min(0.0)), s_hi)
            acc.addcmul_(flat_tail(s_lo, excess.clamp_max_(0.0)), s_lo)
        if w is not None:
            relu = torch.relu(x if basis.periodic else x.clamp_max(1.0 / inv_range))
            acc = torch.addcmul(acc, bcast(w, x), relu)
        return acc.expand_as(x).clone() if acc.shape != x.shape else acc

    @staticmethod
    def backward(ctx, g: Tensor):
        x, coef, scale, w, dends = ctx.saved_tensors
        if ctx.kernel and _cpp.kernels_enabled() and not torch.is_grad_enabled():
            gx, gc, gw = _kernels.slaf_backward(g, x, coef, scale, w, dends, ctx.inv_range, ctx.plan)
            return gx, gc, None, gw, None, None, None
        a = coef * scale
        basis, n, c = BASES.get(ctx.basis_name), a.shape[1], a.shape[0]
        z = x * ctx.inv_range
        zc = z if basis.periodic else z.clamp(-1.0, 1.0)
        g_sum = reduce_units(g, c)
        dp, grads = None, []
        for k, (phi, dphi) in enumerate(basis.terms(zc, n, deriv=True)):
            grads.append(g_sum * phi if isinstance(phi, float) else reduce_product(g, phi, c))
            dp = _axpy(dp, bcast(a[:, k], x), dphi)
        ga = torch.stack(grads, 1)
        gx = g * (dp * ctx.inv_range) if dp is not None else torch.zeros_like(x)
        if not basis.periodic:
            excess = z.sub_(zc)
            r_hi = reduce_product(g, excess.clamp_min(0.0), c)
            r_lo = reduce_product(g, excess.clamp_max_(0.0), c)
            ga = ga + r_lo[:, None] * dends[0] + r_hi[:, None] * dends[1]
        gw = None
        if w is not None:
            relu = torch.relu(x)
            gx = gx.addcmul_(g, (relu > 0).to(x.dtype).mul_(bcast(w, x)))
            gw = reduce_product(g, relu, c)
        return gx, ga * scale, None, gw, None, None, None


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
        ctx.save_for_backward(x, values, lo, hi)
        ctx.kernel = _kernels.usable(x, values, lo, hi)
        if ctx.kernel:
            return _kernels.linear_spline_forward(x, values, lo, hi)
        table, inv_h, offset = _linear_table(values, lo, hi)
        flat, t, tc = _locate(x, table, inv_h, offset)
        return _horner(_lookup(table, flat, x), tc, t, deriv=False)[0]

    @staticmethod
    def backward(ctx, g: Tensor):
        x, values, lo, hi = ctx.saved_tensors
        if ctx.kernel and _cpp.kernels_enabled() and not torch.is_grad_enabled():
            return *_kernels.linear_spline_backward(g, x, values, lo, hi), None, None
        table, inv_h, offset = _linear_table(values, lo, hi)
        gx, gtable = _piecewise_grads(g, x, table, inv_h, offset)
        # table[i] = (v[i], v[i+1] - v[i]): v[i] gets gtable[i, 0] - gtable[i, 1], v[i+1] gets gtable[i, 1].
        gvalues = (torch.nn.functional.pad(gtable[..., 0] - gtable[..., 1], (0, 1))
                   + torch.nn.functional.pad(gtable[..., 1], (1, 0)))
        return gx, gvalues, None, None


class CubicSplineFn(torch.autograd.Function):
    """The cubic B-spline with coefficients (C, K) on grids [lo, hi] (C,): PiecewiseFn on
    ``cubic_table(values)``, taking the coefficients themselves like LinearSplineFn (the
    kernels build the table inside and return the coefficients' gradient).
    """

    @staticmethod
    def forward(ctx, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        ctx.save_for_backward(x, values, lo, hi)
        ctx.kernel = _kernels.usable(x, values, lo, hi)
        if ctx.kernel:
            return _kernels.cubic_spline_forward(x, values, lo, hi)
        table, inv_h, offset = _cubic_grid(values, lo, hi)
        flat, t, tc = _locate(x, table, inv_h, offset)
        return _horner(_lookup(table, flat, x), tc, t, deriv=False)[0]

    @staticmethod
    def backward(ctx, g: Tensor):
        x, values, lo, hi = ctx.saved_tensors
        if ctx.kernel and _cpp.kernels_enabled() and not torch.is_grad_enabled():
            return *_kernels.cubic_spline_backward(g, x, values, lo, hi), None, None
        table, inv_h, offset = _cubic_grid(values, lo, hi)
        gx, gtable = _piecewise_grads(g, x, table, inv_h, offset)
        # table[i, q] = sum_p v[i + p] M[p, q]: v[i + p] gets sum_q gtable[i, q] M[p, q].
        k, m = values.shape[1], _CUBIC.to(gtable)
        gvalues = sum(torch.nn.functional.pad((gtable * m[p]).sum(-1), (p, k - gtable.shape[1] - p))
                      for p in range(4))
        return gx, gvalues, None, None


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
