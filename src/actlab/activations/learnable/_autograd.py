"""Memory-lean autograd kernels for slaf, spline and rational.

Each ``torch.autograd.Function`` saves only its input ``x`` and the small
parameter tensors; ``backward`` recomputes what it needs. Plain autograd
would keep every intermediate of a degree-k polynomial (k full-size tensors
per site); here a site costs one saved tensor, like ReLU's saved output.
Parameters arrive per unit as ``(C, ...)``; see ``_sharing``.

The Python loops run over the degree (a handful of iterations), never over
elements; torch.compile unrolls them and fuses the elementwise chain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab.activations.learnable._sharing import bcast, reduce_units
from actlab.activations.learnable.bases import BASES


def _axpy(acc: Tensor | None, a: Tensor, phi: Tensor | float) -> Tensor | None:
    """acc + a * phi, where phi may be a Python float (a constant basis term)."""
    if isinstance(phi, float):
        if phi == 0.0:
            return acc
        return a * phi if acc is None else acc + a * phi
    return a * phi if acc is None else torch.addcmul(acc, a, phi)


def _reduce(g: Tensor, phi: Tensor | float, n_units: int, g_sum: Tensor) -> Tensor:
    if isinstance(phi, float):
        return g_sum * phi
    return reduce_units(g * phi, n_units)


class SlafFn(torch.autograd.Function):
    """f(x) = sum_k a_k phi_k(zc) + tail(z) [+ w relu(x)], z = x / range."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, w: Tensor | None, dends: Tensor, inv_range: float,
                basis_name: str) -> Tensor:
        ctx.save_for_backward(x, a, w, dends)
        ctx.inv_range, ctx.basis_name = inv_range, basis_name
        basis, n = BASES.get(basis_name), a.shape[1]
        z = x * inv_range
        zc = z if basis.periodic else z.clamp(-1.0, 1.0)
        acc = None
        for k, (phi, _) in enumerate(basis.terms(zc, n, deriv=False)):
            acc = _axpy(acc, bcast(a[:, k], x), phi)
        assert acc is not None
        if not basis.periodic:
            slopes = a @ dends.t()  # (C, 2): the end slopes p'(-1), p'(+1)
            s = torch.where(z > 0, bcast(slopes[:, 1], x), bcast(slopes[:, 0], x))
            acc = torch.addcmul(acc, s, z - zc)
        if w is not None:
            acc = torch.addcmul(acc, bcast(w, x), torch.relu(x))
        return acc.expand_as(x).clone() if acc.shape != x.shape else acc

    @staticmethod
    def backward(ctx, g: Tensor):
        x, a, w, dends = ctx.saved_tensors
        basis, n, c = BASES.get(ctx.basis_name), a.shape[1], a.shape[0]
        z = x * ctx.inv_range
        zc = z if basis.periodic else z.clamp(-1.0, 1.0)
        g_sum = reduce_units(g, c)
        dp, grads = None, []
        for k, (phi, dphi) in enumerate(basis.terms(zc, n, deriv=True)):
            grads.append(_reduce(g, phi, c, g_sum))
            dp = _axpy(dp, bcast(a[:, k], x), dphi)
        ga = torch.stack(grads, 1)
        gx = g * (dp * ctx.inv_range) if dp is not None else torch.zeros_like(x)
        if not basis.periodic:
            excess = z - zc
            r_hi = reduce_units(g * excess.clamp_min(0.0), c)
            r_lo = reduce_units(g * excess.clamp_max(0.0), c)
            ga = ga + r_lo[:, None] * dends[0] + r_hi[:, None] * dends[1]
        gw = None
        if w is not None:
            gx = gx + g * torch.where(x > 0, bcast(w, x), torch.zeros_like(bcast(w, x)))
            gw = reduce_units(g * torch.relu(x), c)
        return gx, ga, gw, None, None, None


class PiecewiseFn(torch.autograd.Function):
    """A piecewise polynomial on uniform segments with linear extrapolation.

    ``table`` (C, S, m) holds each segment's coefficients in the local
    variable t in [0, 1]; ``u = x * inv_h + offset`` is x in segment units.
    Beyond the outer segments the function continues with its end slope.
    """

    @staticmethod
    def forward(ctx, x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> Tensor:
        ctx.save_for_backward(x, table, inv_h, offset)
        rows, t, tc = _locate(x, table, inv_h, offset)
        return _horner(rows, tc, t, deriv=False)[0]

    @staticmethod
    def backward(ctx, g: Tensor):
        x, table, inv_h, offset = ctx.saved_tensors
        c, s, m = table.shape
        u = torch.addcmul(bcast(offset, x), x, bcast(inv_h, x))
        idx, t, tc = _segment(u, s, m)
        flat = _flat_index(idx, c, s, x)
        _, slope = _horner(table.reshape(c * s, m)[flat], tc, t, deriv=True)
        gx = g * (slope * bcast(inv_h, x))
        # d f / d table[j, p] = tc^p + p tc^(p-1) (t - tc): the segment term plus its tail.
        excess = t - tc
        gtable = torch.zeros(m, c * s, dtype=table.dtype, device=table.device)
        flat = flat.reshape(-1)
        gtable[0].index_add_(0, flat, g.reshape(-1))
        gpow = g
        for p in range(1, m):
            term = gpow * t if m == 2 else gpow * torch.add(tc, excess, alpha=p)
            gtable[p].index_add_(0, flat, term.reshape(-1))
            gpow = gpow * tc
        # inv_h and offset belong to the grid, which is set by calibration, not learnt.
        return gx, gtable.t().reshape(c, s, m), None, None


def _segment(u: Tensor, s: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
    idx = u.clamp(0.0, s - 1.0).long()  # truncation of a non-negative number is floor
    t = u - idx
    # Linear segments extrapolate by themselves; higher orders use the tangent at the end.
    tc = t if m == 2 else t.clamp(0.0, 1.0)
    return idx, t, tc


def _flat_index(idx: Tensor, c: int, s: int, x: Tensor) -> Tensor:
    """Row of the (C*S, m) table for each element: segment + unit * S."""
    if c == 1:
        return idx
    return idx + bcast(torch.arange(c, device=x.device) * s, x)


def _locate(x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    c, s, m = table.shape
    u = torch.addcmul(bcast(offset, x), x, bcast(inv_h, x))
    idx, t, tc = _segment(u, s, m)
    return table.reshape(c * s, m)[_flat_index(idx, c, s, x)], t, tc


def _horner(rows: Tensor, tc: Tensor, t: Tensor, deriv: bool) -> tuple[Tensor, Tensor | None]:
    """Value (with tail) and optionally d/dt of sum_p rows[..., p] tc^p."""
    m = rows.shape[-1]
    if m == 2:
        return torch.addcmul(rows[..., 0], rows[..., 1], t), rows[..., 1]
    val = rows[..., m - 1]
    der = rows[..., m - 1] * (m - 1)
    for p in range(m - 2, -1, -1):
        val = torch.addcmul(rows[..., p], val, tc)
        if p > 0:
            der = torch.addcmul(rows[..., p] * p, der, tc)
    return torch.addcmul(val, der, t - tc), der if deriv else None


class RationalFn(torch.autograd.Function):
    """Safe Padé: P(x) / (1 + sum_k |b_k| |x|^k), a (C, m+1), b (C, n)."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, a, b)
        p, q = _rational_pq(x, a, b)
        return p / q

    @staticmethod
    def backward(ctx, g: Tensor):
        x, a, b = ctx.saved_tensors
        c, m1, n = a.shape[0], a.shape[1], b.shape[1]
        ax, ab = x.abs(), b.abs()
        p, q = _rational_pq(x, a, b)
        r = p / q
        dp = _horner_poly(x, a[:, 1:] * torch.arange(1, m1, dtype=a.dtype, device=a.device), x)
        dq = _horner_poly(ax, ab * torch.arange(1, n + 1, dtype=a.dtype, device=a.device), x)
        gq = g / q
        gx = gq * (dp - r * dq * torch.sign(x))
        # Powers of x over Q stay bounded for large |x| (Q grows like |x|^n).
        ga, pw = [reduce_units(gq, c)], gq
        for _ in range(1, m1):
            pw = pw * x
            ga.append(reduce_units(pw, c))
        gb, pw = [], -gq * r
        for _ in range(n):
            pw = pw * ax
            gb.append(reduce_units(pw, c))
        return gx, torch.stack(ga, 1), torch.stack(gb, 1) * torch.sign(b)


def _horner_poly(x: Tensor, coef: Tensor, like: Tensor) -> Tensor:
    """sum_j coef[:, j] x^j for per-unit coefficients (C, K), broadcast like ``like``."""
    k = coef.shape[1]
    if k == 1:
        return bcast(coef[:, 0], like).expand_as(like)
    acc = torch.addcmul(bcast(coef[:, k - 2], like), x, bcast(coef[:, k - 1], like))
    for j in range(k - 3, -1, -1):
        acc = torch.addcmul(bcast(coef[:, j], like), acc, x)
    return acc


def _rational_pq(x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    p = _horner_poly(x, a, x)
    one = torch.ones(b.shape[0], 1, dtype=b.dtype, device=b.device)
    q = _horner_poly(x.abs(), torch.cat([one, b.abs()], 1), x)
    return p, q
