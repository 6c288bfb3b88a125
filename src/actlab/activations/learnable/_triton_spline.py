"""Triton twins of the spline kernels (``_kernels_spline*.cpp``) in ``torch.ops.actlab_triton``.

``spline_fwd``/``spline_bwd`` take PiecewiseFn's segment table (C, S, m), m = 2 (value,
slope) or 4 (a cubic in t); ``linear_spline_*`` and ``cubic_spline_*`` take the knot values
or B-spline coefficients (C, K) and grid ends lo, hi (C,), build each element's segment
coefficients from them on the fly and return the values' gradient, as the C++ kernels do.
The semantics are ``_autograd_spline``'s: u = x inv_h + offset, segment trunc(clamp(u, 0,
S - 1)) (NaN reads segment 0 and stays NaN), linear segments extrapolate by themselves,
cubics continue with their end tangent, and where that tangent is 0 the excess beyond the
range is clamped to [-1, 1], so that a flat tail gives its value at +-inf, not 0 * inf.

A tile's elements fall into any segment, so the parameter gradient is a scatter: float32
atomic adds into a zeroed buffer shaped like the parameters (the values' gradient added
directly, each element's table terms mapped to the values it was built from). Programs
running side by side add into different copies of the buffer, summed by torch, so that
they do not queue on the few addresses a small table has (the C++ kernels' kCopies).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import column, tile

_MAX_COPIES = 8
_SIXTH = tl.constexpr(1.0 / 6.0)  # the B-spline weights kCubic / 6 (float32-rounded like _CUBIC)
_TWO_THIRDS = tl.constexpr(4.0 / 6.0)


@triton.jit
def _grid(a_ptr, b_ptr, c, C, NS, VALUES: tl.constexpr):
    """Each column's inv_h and offset [1, BC]: given (a, b), or from the grid ends lo = a, hi = b."""
    a = column(a_ptr, c, C, 1, 0)
    if VALUES:
        hi = tl.load(b_ptr + c, mask=c < C, other=1.0)[None, :]  # 1, not 0: no 1 / 0 in idle columns
        inv_h = (1.0 / (hi - a)) * tl.cast(NS, tl.float32)
        return inv_h, -a * inv_h
    return a, column(b_ptr, c, C, 1, 0)


@triton.jit
def _locate(x, inv_h, off, NS, M: tl.constexpr):
    """Segment (clamped; NaN reads 0), t = u - segment, and t clamped to [0, 1] for cubics."""
    u = x * inv_h + off
    uc = tl.where(u > 0.0, u, 0.0)
    last = tl.cast(NS - 1, tl.float32)  # tl.cast: NS = 1 comes as a constexpr
    seg = tl.where(uc < last, uc, last).to(tl.int32)
    t = u - seg.to(tl.float32)
    tc = t
    if M == 4:
        tc = _clamp(t, 0.0, 1.0)
    return seg, t, tc


@triton.jit
def _clamp(z, lo, hi):
    """z clamped to [lo, hi] with NaN kept (tl.minimum/maximum may drop it)."""
    return tl.where(z < lo, lo, tl.where(z > hi, hi, z))


@triton.jit
def _flat_tail(slope, excess):
    return tl.where(slope == 0.0, _clamp(excess, -1.0, 1.0), excess)


@triton.jit
def _coefs(p_ptr, base, mask, M: tl.constexpr, VALUES: tl.constexpr):
    """The element's segment coefficients c0..c3 (c2, c3 unused for M = 2), gathered at ``base``:
    a table row, or the first of the knot values that the row is made of."""
    v0 = tl.load(p_ptr + base, mask=mask, other=0.0)
    v1 = tl.load(p_ptr + base + 1, mask=mask, other=0.0)
    c0, c1, c2, c3 = v0, v1, v1, v1
    if VALUES and M == 2:
        c1 = v1 - v0
    if M == 4:
        v2 = tl.load(p_ptr + base + 2, mask=mask, other=0.0)
        v3 = tl.load(p_ptr + base + 3, mask=mask, other=0.0)
        c2, c3 = v2, v3
        if VALUES:  # c_q = sum_p v_p kCubic[p][q] / 6, as _kernels_spline_values.cpp builds the table
            c0 = _mix(v0, v1, v2, v3, _SIXTH, _TWO_THIRDS, _SIXTH, 0.0)
            c1 = _mix(v0, v1, v2, v3, -0.5, 0.0, 0.5, 0.0)
            c2 = _mix(v0, v1, v2, v3, 0.5, -1.0, 0.5, 0.0)
            c3 = _mix(v0, v1, v2, v3, -_SIXTH, 0.5, -0.5, _SIXTH)
    return c0, c1, c2, c3


@triton.jit
def _mix(a0, a1, a2, a3, w0, w1, w2, w3):
    """sum_k a_k w_k in k order, zero weights included as in the C++ kernels: 0 * inf is NaN there too."""
    return a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3


@triton.jit
def _slope(c1, c2, c3, tc):
    return (c3 * 3.0 * tc + c2 * 2.0) * tc + c1


@triton.jit
def _fwd_kernel(x_ptr, p_ptr, a_ptr, b_ptr, y_ptr, NS, K, C, S, n_j, BJ: tl.constexpr, BC: tl.constexpr,
                FLAT: tl.constexpr, M: tl.constexpr, VALUES: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    inv_h, off = _grid(a_ptr, b_ptr, c, C, NS, VALUES)
    seg, t, tc = _locate(x, inv_h, off, NS, M)
    base = _base(c, seg, K, M, VALUES)
    c0, c1, c2, c3 = _coefs(p_ptr, base, mask, M, VALUES)
    if M == 2:
        y = c0 + c1 * _flat_tail(c1, t)
    else:
        val = ((c3 * tc + c2) * tc + c1) * tc + c0
        der = _slope(c1, c2, c3, tc)
        y = val + der * _flat_tail(der, t - tc)
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def _base(c, seg, K, M: tl.constexpr, VALUES: tl.constexpr):
    """Where an element's parameters start in its unit's K: table row seg (M each), or knot value seg."""
    if VALUES:
        return c[None, :].to(tl.int64) * K + seg
    return c[None, :].to(tl.int64) * K + seg * M


@triton.jit
def _bwd_kernel(g_ptr, x_ptr, p_ptr, a_ptr, b_ptr, gx_ptr, gp_ptr, NS, K, COPIES, C, S, n_j, BJ: tl.constexpr,
                BC: tl.constexpr, FLAT: tl.constexpr, M: tl.constexpr, VALUES: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    inv_h, off = _grid(a_ptr, b_ptr, c, C, NS, VALUES)
    seg, t, tc = _locate(x, inv_h, off, NS, M)
    base = _base(c, seg, K, M, VALUES)
    c0, c1, c2, c3 = _coefs(p_ptr, base, mask, M, VALUES)
    # d f / d table[seg, p] = tc^p + p tc^(p-1) (t - tc), times g (tails unclamped, like the reference)
    e0 = g
    e1 = g * t
    e2 = e1
    e3 = e1
    slope = c1
    if M == 4:
        slope = _slope(c1, c2, c3, tc)
        ex = t - tc
        g2 = g * tc
        g3 = g2 * tc
        e1 = g * (tc + ex)
        e2 = g2 * (tc + 2.0 * ex)
        e3 = g3 * (tc + 3.0 * ex)
    tl.store(gx_ptr + offs, g * (slope * inv_h), mask=mask)
    if VALUES and M == 2:  # (v[i], v[i+1] - v[i]): v[i] gets e0 - e1, v[i+1] gets e1
        e0 = e0 - e1
    if VALUES and M == 4:  # v[i + p] gets sum_q e_q kCubic[p][q] / 6
        e0, e1, e2, e3 = (_mix(e0, e1, e2, e3, _SIXTH, -0.5, 0.5, -_SIXTH),
                          _mix(e0, e1, e2, e3, _TWO_THIRDS, 0.0, -1.0, 0.5),
                          _mix(e0, e1, e2, e3, _SIXTH, 0.5, 0.5, -0.5),
                          _mix(e0, e1, e2, e3, 0.0, 0.0, 0.0, _SIXTH))
    dst = gp_ptr + (tl.program_id(0) % COPIES).to(tl.int64) * (C * K) + base
    tl.atomic_add(dst, e0, mask=mask, sem="relaxed")
    tl.atomic_add(dst + 1, e1, mask=mask, sem="relaxed")
    if M == 4:
        tl.atomic_add(dst + 2, e2, mask=mask, sem="relaxed")
        tl.atomic_add(dst + 3, e3, mask=mask, sem="relaxed")


def _check(x: Tensor, n_units: int, segments: int, m: int) -> None:
    """The C++ kernels' checks (spline_shape, view_of): the shapes that their results need."""
    torch._check(x.dtype == torch.float32 and x.is_contiguous(), lambda: "x must be float32 and contiguous")
    torch._check(m in (2, 4), lambda: "table must be (C, S, 2 or 4)")
    torch._check(segments >= 1, lambda: "the spline needs at least one segment")
    torch._check(n_units == 1 or (x.dim() >= 2 and x.shape[1] == n_units),
                 lambda: f"expected {n_units} channels on dim 1, got shape {tuple(x.shape)}")


def _column(p: Tensor, n_units: int, name: str) -> Tensor:
    p = p.to(torch.float32).reshape(-1).contiguous()
    torch._check(p.numel() == n_units, lambda: f"{name} needs one value per channel")
    return p


def _forward(x: Tensor, p: Tensor, a: Tensor, b: Tensor, segments: int, m: int, values: bool) -> Tensor:
    y = torch.empty_like(x)
    if x.numel():
        t = _triton.tiles(x, p.shape[0])
        with _triton.device_guard(x):
            _fwd_kernel[t.grid](x, p, a, b, y, segments, p[0].numel(), **t.meta(), M=m, VALUES=values)
    return y


def _backward(g: Tensor, x: Tensor, p: Tensor, a: Tensor, b: Tensor, segments: int, m: int,
              values: bool) -> tuple[Tensor, Tensor]:
    """grad_input and the gradient of ``p`` (table or values), scattered into ``copies`` buffers."""
    torch._check(g.shape == x.shape, lambda: "g must be shaped like x")
    gx = torch.empty_like(x)
    if not x.numel():
        return gx, torch.zeros_like(p)
    t = _triton.tiles(x, p.shape[0])
    # Copies cost a zeroing and a sum of p's size each: at most a sixteenth of x's traffic.
    copies = max(1, min(_MAX_COPIES, t.grid[0], x.numel() // (16 * p.numel())))
    gp = torch.zeros(copies, *p.shape, dtype=torch.float32, device=x.device)
    with _triton.device_guard(x):
        _bwd_kernel[t.grid](g.contiguous(), x, p, a, b, gx, gp, segments, p[0].numel(), copies, **t.meta(), M=m,
                            VALUES=values)
    return gx, gp.sum(0) if copies > 1 else gp.reshape(p.shape)


def _table_args(x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    torch._check(table.dim() == 3, lambda: "table must be (C, S, 2 or 4)")
    _check(x, table.shape[0], table.shape[1], table.shape[2])
    return table.contiguous(), _column(inv_h, table.shape[0], "inv_h"), _column(offset, table.shape[0], "offset")


def _values_args(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
    torch._check(values.dim() == 2 and values.shape[1] >= m, lambda: f"values must be (C, K >= {m})")
    _check(x, values.shape[0], values.shape[1] - (m - 1), m)
    return values.contiguous(), _column(lo, values.shape[0], "lo"), _column(hi, values.shape[0], "hi")


@torch.library.custom_op("actlab_triton::spline_fwd", mutates_args=())
def spline_fwd(x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> Tensor:
    table, inv_h, offset = _table_args(x, table, inv_h, offset)
    return _forward(x, table, inv_h, offset, table.shape[1], table.shape[2], False)


@torch.library.custom_op("actlab_triton::spline_bwd", mutates_args=())
def spline_bwd(g: Tensor, x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    table, inv_h, offset = _table_args(x, table, inv_h, offset)
    return _backward(g, x, table, inv_h, offset, table.shape[1], table.shape[2], False)


@spline_fwd.register_fake
def _(x, table, inv_h, offset):
    return torch.empty_like(x)


@spline_bwd.register_fake
def _(g, x, table, inv_h, offset):
    return torch.empty_like(x), torch.empty_like(table)


def _register_values(kind: str, m: int) -> None:
    """``{kind}_spline_fwd`` / ``_bwd``: the spline of order m - 1 on its knot values (C, K), grid [lo, hi]."""

    @torch.library.custom_op(f"actlab_triton::{kind}_spline_fwd", mutates_args=())
    def fwd(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        values, lo, hi = _values_args(x, values, lo, hi, m)
        return _forward(x, values, lo, hi, values.shape[1] - (m - 1), m, True)

    @torch.library.custom_op(f"actlab_triton::{kind}_spline_bwd", mutates_args=())
    def bwd(g: Tensor, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        values, lo, hi = _values_args(x, values, lo, hi, m)
        return _backward(g, x, values, lo, hi, values.shape[1] - (m - 1), m, True)

    fwd.register_fake(lambda x, values, lo, hi: torch.empty_like(x))
    bwd.register_fake(lambda g, x, values, lo, hi: (torch.empty_like(x), torch.empty_like(values)))


_register_values("linear", 2)
_register_values("cubic", 4)
