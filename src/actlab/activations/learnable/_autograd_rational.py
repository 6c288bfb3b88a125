"""The safe Padé activation's autograd Function (see ``_autograd`` for the shared scheme).

Saves only ``x`` and the coefficients; the PyTorch code is the reference and the
path for every case the C++ kernel does not take. Huge and infinite inputs are
evaluated through polynomials in ``1/x`` scaled by ``max(1, |x|)``, so that
``|x| = 1e38`` and ``+-inf`` give the rational's linear limit and finite
gradients at finite inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.activations.learnable._autograd import _axpy
from actlab.activations.learnable._sharing import bcast, reduce_product


class RationalFn(torch.autograd.Function):
    """Safe Padé: P(x) / (1 + sum_k |b_k| |x|^k), a (C, m+1), b (C, n)."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(x, a, b)
        ctx.kernel = _kernels.rational_fits(a, b) and _kernels.usable(x, a, b)
        if ctx.kernel:
            return _kernels.rational_forward(x, a, b)
        return _rational_value(x, a, b)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, a, b = ctx.saved_tensors
        if ctx.kernel and _cpp.kernels_enabled() and not torch.is_grad_enabled():
            return _kernels.rational_backward(g, x, a, b)
        c, m1, n = a.shape[0], a.shape[1], b.shape[1]
        # Every power of x divided by s^n, s = max(1, |x|), as Q is: for a large finite x they stay
        # finite (float32 x^5 overflows beyond 4.6e7, which made the gradients NaN there).
        s, u = x.abs().clamp_min(1.0), x.clamp(-1.0, 1.0)  # u = x / s
        pw, pa = _over_scale(u, s, m1 - 1, n), _over_scale(u.abs(), s, n, n)
        ab = b.abs()
        p, q = _combine(a, pw, x), pa[0] + _combine(ab, pa[1:], x)
        dp = _combine(a[:, 1:] * torch.arange(1, m1, dtype=a.dtype, device=a.device), pw[:-1], x)
        dq = _combine(ab * torch.arange(1, n + 1, dtype=a.dtype, device=a.device), pa[:-1], x)
        r, gq = p / q, g / q
        gx = gq * (dp - r * dq * torch.sign(x))
        ga = [reduce_product(gq, t, c) for t in pw]
        gqr = gq.mul_(r).neg_()  # gq is not needed any more
        gb = [reduce_product(gqr, t, c) for t in pa[1:]]
        return gx, torch.stack(ga, 1), torch.stack(gb, 1) * torch.sign(b)


def _over_scale(u: Tensor, s: Tensor, degree: int, n: int) -> list[Tensor]:
    """(u s)^j / s^n = u^j s^(j-n) for j = 0..degree, |u| <= 1 <= s: no power of s beyond j - n."""
    out, up = [s.pow(-n)], u
    for j in range(1, degree + 1):
        out.append(up if j == n else up * s.pow(j - n))
        up = up * u
    return out


def _combine(coef: Tensor, terms: list[Tensor], like: Tensor) -> Tensor:
    """sum_j coef[:, j] terms[j] for per-unit coefficients (C, K), broadcast like ``like``."""
    acc = None
    for j, t in enumerate(terms):
        acc = _axpy(acc, bcast(coef[:, j], like), t)
    return acc if acc is not None else torch.zeros_like(like)


def _horner_poly(x: Tensor, coef: Tensor, like: Tensor) -> Tensor:
    """sum_j coef[:, j] x^j for per-unit coefficients (C, K), broadcast like ``like``."""
    k = coef.shape[1]
    if k == 1:
        return bcast(coef[:, 0], like).expand_as(like)
    acc = torch.addcmul(bcast(coef[:, k - 2], like), x, bcast(coef[:, k - 1], like))
    for j in range(k - 3, -1, -1):
        acc = torch.addcmul(bcast(coef[:, j], like), acc, x)
    return acc


def _rational_value(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """P(x) / Q(x); where |x| > 1 from the reversed polynomials in w = 1/x,

        P(x) / Q(x) = sign(x)^m |x|^(m-n) (sum_j a_j w^(m-j)) / (|w|^n + sum_k |b_k| |w|^(n-k)),

    so that no power of a large x overflows (float32 x^5 does beyond 4.6e7, giving
    inf / inf) and x = +-inf gives the limit, +-inf along the linear growth of num = den + 1.
    Exact zeros at the top of P or Q are dropped per channel first (m and n are the
    highest nonzero powers), so that the limits hold for them too (0 * inf otherwise).
    """
    p, q = _rational_pq(x, a, b)
    big = x.abs() > 1.0  # False for NaN, which P / Q keeps
    w = torch.where(big, x.reciprocal(), 0.0)
    one = torch.ones(b.shape[0], 1, dtype=b.dtype, device=b.device)
    a_rev, m = _reversed(a)
    q_rev, n = _reversed(torch.cat([one, b.abs()], 1))
    scale = x.abs().pow(bcast((m - n).to(x.dtype), x)) * torch.where(bcast(m % 2 == 1, x), x.sign(), 1.0)
    return torch.where(big, scale * _horner_poly(w, a_rev, x) / _horner_poly(w.abs(), q_rev, x), p / q)


def _reversed(c: Tensor) -> tuple[Tensor, Tensor]:
    """Per row of coefficients c (C, K) of 1, t, ..., t^(K-1): its degree d (the highest
    nonzero power, 0 for a zero row) and the coefficients of the reversed polynomial
    t^d p(1/t), zero-padded to K."""
    k = torch.arange(c.shape[1], device=c.device)
    degree = torch.where(c != 0, k, 0).amax(1)
    j = degree[:, None] - k
    return torch.where(j >= 0, c.gather(1, j.clamp_min(0)), 0.0), degree


def _rational_pq(x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    p = _horner_poly(x, a, x)
    one = torch.ones(b.shape[0], 1, dtype=b.dtype, device=b.device)
    q = _horner_poly(x.abs(), torch.cat([one, b.abs()], 1), x)
    return p, q
