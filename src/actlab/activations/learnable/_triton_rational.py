"""Triton twins of ``actlab_learnable::rational_fwd`` / ``rational_bwd`` (``_kernels_rational.cpp``).

Safe Padé P(x) / (1 + sum_k |b_k| |x|^k), a (C, m+1), b (C, n), the degrees
``tl.constexpr``. The forward is Horner's rule in the reference's order; where
|x| > far (far^max(m, n) = 2^100, so no power below it overflows) it takes the
reference's reversed polynomials in w = 1/x (``_autograd_rational._rational_value``,
exact top zeros dropped per channel), so that huge and infinite inputs give
the limits, not inf / inf. A program evaluates that form only when its tile
holds such an input. The backward is ``RationalFn.backward``'s everywhere:
every power of x divided by s^n, s = max(1, |x|), built from s^0 outwards as
the C++ kernel's far form is, so that no power over- or underflows at a huge
finite x (where the C++ kernel takes its plain form, both agree to rounding).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import column, store_partial, tile

_MAX_TERMS = 64  # kMaxTerms in _kernels.h


@triton.jit
def _abs_b(b_ptr, c, C, NQ: tl.constexpr, k: tl.constexpr):
    """|b_k| of each column (k = 1..NQ), the denominator's coefficient of |x|^k."""
    return tl.abs(column(b_ptr, c, C, NQ, k - 1))


@triton.jit
def _sign(x):
    """torch.sign: 0 at 0, NaN stays NaN."""
    return tl.where(x > 0.0, 1.0, tl.where(x < 0.0, -1.0, x * 0.0))


@triton.jit
def _reversed(x, a_ptr, b_ptr, c, C, NP: tl.constexpr, NQ: tl.constexpr):
    """sign(x)^m' |x|^(m'-n') P~(w) / Q~(|w|), w = 1/x, m' and n' the degrees without exact top zeros."""
    big = tl.abs(x) > 1.0
    w = 1.0 / tl.where(big, x, 1.0)  # only |x| > far is taken: the rest need not divide
    aw, ax = tl.abs(w), tl.abs(x)
    a0 = column(a_ptr, c, C, NP, 0)
    rp = tl.full(a0.shape, 1, tl.int32)  # numerator terms up to the highest nonzero one
    for j in tl.static_range(1, NP):
        rp = tl.where(column(a_ptr, c, C, NP, j) != 0.0, j + 1, rp)
    rq = tl.full(a0.shape, 0, tl.int32)  # the denominator's degree
    for k in tl.static_range(1, NQ + 1):
        rq = tl.where(_abs_b(b_ptr, c, C, NQ, k) != 0.0, k, rq)
    p = a0 + tl.zeros_like(x)  # the reversed Horner rules: a_0 first, steps beyond the degree skipped
    for j in tl.static_range(1, NP):
        p = tl.where(j < rp, p * w + column(a_ptr, c, C, NP, j), p)
    q = tl.zeros_like(x) + 1.0
    for k in tl.static_range(1, NQ + 1):
        q = tl.where(k <= rq, q * aw + _abs_b(b_ptr, c, C, NQ, k), q)
    e = rp - 1 - rq
    scale = tl.zeros_like(x) + 1.0  # |x|^e, by repeated products as the C++ kernel (it overflows where pow does)
    for t in tl.static_range(1, NP):
        scale = tl.where(t <= e, scale * ax, scale)
    for t in tl.static_range(1, NQ + 1):
        scale = tl.where(t <= -e, scale * ax, scale)
    scale = tl.where(e < 0, 1.0 / scale, scale)
    scale = tl.where(((rp - 1) % 2 == 1) & (x < 0.0), -scale, scale)
    return scale * p / q


@triton.jit
def _rational_fwd_kernel(x_ptr, a_ptr, b_ptr, y_ptr, C, S, n_j, BJ: tl.constexpr, BC: tl.constexpr,
                         FLAT: tl.constexpr, NP: tl.constexpr, NQ: tl.constexpr, FAR: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    ax = tl.abs(x)
    p = column(a_ptr, c, C, NP, NP - 1) + tl.zeros_like(x)
    for i in tl.static_range(1, NP):
        p = p * x + column(a_ptr, c, C, NP, NP - 1 - i)
    q = _abs_b(b_ptr, c, C, NQ, NQ) + tl.zeros_like(x)
    for i in tl.static_range(1, NQ):
        q = q * ax + _abs_b(b_ptr, c, C, NQ, NQ - i)
    y = p / (q * ax + 1.0)
    big = ax > FAR  # False for NaN, which P / Q keeps
    if tl.max(big.to(tl.int32)) > 0:
        y = tl.where(big, _reversed(x, a_ptr, b_ptr, c, C, NP, NQ), y)
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def _spow(s, inv, E: tl.constexpr):
    """s^E as repeated products from 1 (inv = 1/s for E < 0): no intermediate beyond the result."""
    r = tl.zeros_like(s) + 1.0
    if E > 0:
        for _ in tl.static_range(E):
            r = r * s
    else:
        for _ in tl.static_range(-E):
            r = r * inv
    return r


@triton.jit
def _rational_bwd_kernel(g_ptr, x_ptr, a_ptr, b_ptr, gx_ptr, part_ptr, C, S, n_j, BJ: tl.constexpr,
                         BC: tl.constexpr, FLAT: tl.constexpr, NP: tl.constexpr, NQ: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    K: tl.constexpr = NP + NQ
    TOP: tl.constexpr = NP - 1 if NP - 1 > NQ else NQ
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    ax = tl.abs(x)
    s = tl.where(ax < 1.0, 1.0, ax)  # NaN stays NaN
    u = tl.where(x > 1.0, 1.0, tl.where(x < -1.0, -1.0, x))  # x / s
    au, inv = tl.abs(u), 1.0 / s
    zero = tl.zeros_like(x)
    p, q, dp, dq = zero, zero, zero, zero
    up, aup = 1.0 + zero, 1.0 + zero  # u^j, |u|^j
    for j in tl.static_range(TOP + 1):  # pw_j = u^j s^(j-n) (j < NP), pa_j = |u|^j s^(j-n) (j <= NQ)
        sj = _spow(s, inv, j - NQ)
        if j < NP:
            pw = up * sj
            p += column(a_ptr, c, C, NP, j) * pw
            if j + 1 < NP:
                dp += column(a_ptr, c, C, NP, j + 1) * (j + 1) * pw
        if j <= NQ:
            pa = aup * sj
            if j == 0:
                q += pa
            else:
                q += _abs_b(b_ptr, c, C, NQ, j) * pa
            if j + 1 <= NQ:
                dq += _abs_b(b_ptr, c, C, NQ, j + 1) * (j + 1) * pa
        up, aup = up * u, aup * au
    r, gq = p / q, g / q
    tl.store(gx_ptr + offs, gq * (dp - r * dq * _sign(x)), mask=mask)
    gqr = -(gq * r)
    up, aup = 1.0 + zero, 1.0 + zero
    for j in tl.static_range(TOP + 1):
        sj = _spow(s, inv, j - NQ)
        if j < NP:
            store_partial(part_ptr, gq * (up * sj), mask, c, C, K, j)
        if j >= 1 and j <= NQ:
            store_partial(part_ptr, gqr * (aup * sj), mask, c, C, K, NP + j - 1)
        up, aup = up * u, aup * au


def _far(np_: int, nq: int) -> float:
    """The C++ kernel's far = exp2(100 / max(m, n)) in float32: beyond it a power of x might overflow."""
    return float(torch.exp2(torch.tensor(100.0, dtype=torch.float32) / max(np_ - 1, nq)))


def _check(x: Tensor, a: Tensor, b: Tensor) -> None:
    torch._check(x.is_contiguous(), lambda: "x must be contiguous")
    torch._check(a.dim() == 2 and b.dim() == 2 and a.shape[0] == b.shape[0],
                 lambda: "a (C, m+1) and b (C, n) expected")
    torch._check(a.shape[1] >= 1 and b.shape[1] >= 1 and a.shape[1] + b.shape[1] <= _MAX_TERMS,
                 lambda: f"a and b may hold at most {_MAX_TERMS} coefficients together")


@torch.library.custom_op("actlab_triton::rational_fwd", mutates_args=())
def rational_fwd(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    _check(x, a, b)
    y = torch.empty_like(x)
    if x.numel():
        a, b = a.contiguous(), b.contiguous()
        t = _triton.tiles(x, a.shape[0])
        np_, nq = a.shape[1], b.shape[1]
        with _triton.device_guard(x):
            _rational_fwd_kernel[t.grid](x, a, b, y, **t.meta(), NP=np_, NQ=nq, FAR=_far(np_, nq))
    return y


@rational_fwd.register_fake
def _(x, a, b):
    return torch.empty_like(x)


@torch.library.custom_op("actlab_triton::rational_bwd", mutates_args=())
def rational_bwd(g: Tensor, x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    _check(x, a, b)
    torch._check(g.shape == x.shape and g.is_contiguous(), lambda: "grad must be contiguous and shaped like x")
    gx = torch.empty_like(x)
    np_, nq = a.shape[1], b.shape[1]
    if not x.numel():
        return gx, torch.zeros_like(a), torch.zeros_like(b)
    a, b = a.contiguous(), b.contiguous()
    t = _triton.tiles(x, a.shape[0])
    part = t.partials(np_ + nq, x)
    with _triton.device_guard(x):
        _rational_bwd_kernel[t.grid](g, x, a, b, gx, part, **t.meta(), NP=np_, NQ=nq)
    sums = part.sum(0)
    return gx, sums[:, :np_].contiguous(), sums[:, np_:] * torch.sign(b)  # d|b|/db as torch.sign


@rational_bwd.register_fake
def _(g, x, a, b):
    return torch.empty_like(x), torch.empty_like(a), torch.empty_like(b)
