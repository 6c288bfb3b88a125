"""The lookup table on CUDA: ``torch.ops.actlab_triton.pwl_lookup``, a Triton kernel, and its input gradient.

The C++ kernel of :mod:`actlab.compress._kernel` is CPU only; on CUDA the
eager formula (:func:`actlab.compress._fastpath.pwl_lookup`) makes nine
passes over memory and its backward as many again. This kernel makes one:
per element u = (x - lo) inv_h, i = min(max(floor(u), 0), T - 1) (NaN reads
segment 0, where t = NaN gives y = NaN), t = u - i clamped to [-1, 1] only on
the side of a flat tail (b[0] = 0 or b[T-1] = 0, which ``PWLActivation.lc``
and ``uc`` hold; so x = +-inf gives the tail's value, not a + 0 * inf), and
y = a[i] + t b[i]. The same float32 operations in the same order as the
formula and the C++ kernel, launched with ``enable_fp_fusion=False`` so that
``a + t * b`` is not fused into one rounding: the results equal the formula's
bit for bit.

Arguments as the C++ ``actlab_pwl::lookup`` takes them (without ``isa``):
``tab`` (C, 4T) is ``PWLActivation.tab``, per channel a = values[:-1],
b = diff(values), then the pairs (unread here: a GPU gathers a and b alike);
``lo`` and ``inv_h`` = T / (hi - lo) have C entries; C = 1 shares the table
over an input of any shape, else channels lie along dim 1. The gradient is
the formula's autograd: g b[i] inv_h, zero where t's clamp holds it or t is
NaN; the tables are buffers and get none.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import tile


@triton.jit
def _segment(x, tab_ptr, lo_ptr, inv_h_ptr, c, C, T, mask):
    """Per element: the row of its channel's tables, its segment i, t = u - i (unclamped),
    b[i], inv_h, and whether each side's tail is flat (clamping t to -1 or +1)."""
    col = c < C
    lo = tl.load(lo_ptr + c, mask=col, other=0.0)[None, :]
    inv_h = tl.load(inv_h_ptr + c, mask=col, other=1.0)[None, :]
    row = tab_ptr + c[None, :].to(tl.int64) * (4 * T)
    u = (x - lo) * inv_h
    f = tl.floor(u)
    f = tl.where(f > 0.0, f, 0.0)  # NaN > 0 is false: segment 0, an index in bounds
    last = (T - 1) * 1.0
    f = tl.where(f < last, f, last)
    i = f.to(tl.int32)
    b = tl.load(row + T + i, mask=mask, other=0.0)
    flat_lo = tl.load(row + T, mask=col[None, :], other=1.0) == 0.0
    flat_hi = tl.load(row + 2 * T - 1, mask=col[None, :], other=1.0) == 0.0
    return row, i, u - f, b, inv_h, flat_lo, flat_hi


@triton.jit
def _pwl_fwd_kernel(x_ptr, tab_ptr, lo_ptr, inv_h_ptr, y_ptr, T, C, S, n_j,
                    BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    row, i, t, b, inv_h, flat_lo, flat_hi = _segment(x, tab_ptr, lo_ptr, inv_h_ptr, c, C, T, mask)
    t = tl.where(flat_lo & (t < -1.0), -1.0, t)  # comparisons with NaN are false: t stays NaN
    t = tl.where(flat_hi & (t > 1.0), 1.0, t)
    a = tl.load(row + i, mask=mask, other=0.0)
    tl.store(y_ptr + offs, a + t * b, mask=mask)


@triton.jit
def _pwl_bwd_kernel(g_ptr, x_ptr, tab_ptr, lo_ptr, inv_h_ptr, dx_ptr, T, C, S, n_j,
                    BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    row, i, t, b, inv_h, flat_lo, flat_hi = _segment(x, tab_ptr, lo_ptr, inv_h_ptr, c, C, T, mask)
    # torch.clamp passes the gradient where lc <= t <= uc, which NaN fails
    keep = (t == t) & ~(flat_lo & (t < -1.0)) & ~(flat_hi & (t > 1.0))
    tl.store(dx_ptr + offs, tl.where(keep, g * b, 0.0) * inv_h, mask=mask)


def _check(x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor) -> None:
    """The C++ operator's checks: out-of-bounds reads on a GPU would not raise."""
    if x.dtype != torch.float32 or not x.is_contiguous():
        raise ValueError("pwl_lookup: x must be a contiguous float32 tensor")
    if not (_triton.same_device(x, tab, lo, inv_h) and tab.is_contiguous()):
        raise ValueError("pwl_lookup: the tables must be contiguous float32 tensors on x's device")
    if tab.ndim != 2 or tab.shape[1] < 4 or tab.shape[1] % 4:
        raise ValueError(f"pwl_lookup: tab must be (C, 4T), got {tuple(tab.shape)}")
    channels = tab.shape[0]
    if lo.numel() != channels or inv_h.numel() != channels:
        raise ValueError("pwl_lookup: lo and inv_h need one entry per table row")
    if channels != 1 and (x.ndim < 2 or x.shape[1] != channels):
        raise ValueError(f"pwl_lookup: x needs the tables' {channels} channels along dim 1, got {tuple(x.shape)}")


def _launch(kernel, x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor, *tensors: Tensor) -> Tensor:
    """``kernel`` over x's tiles with ``tensors`` before x and a fresh output after the tables."""
    _check(x, tab, lo, inv_h)
    out = torch.empty_like(x)
    if x.numel():
        t = _triton.tiles(x, tab.shape[0])
        with _triton.device_guard(x):
            kernel[t.grid](*tensors, x, tab, lo.contiguous(), inv_h.contiguous(), out, tab.shape[1] // 4,
                           **t.meta(), enable_fp_fusion=False)
    return out


@torch.library.custom_op("actlab_triton::pwl_lookup", mutates_args=())
def pwl_lookup(x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor) -> Tensor:
    """The table at x (see the module docstring)."""
    return _launch(_pwl_fwd_kernel, x, tab, lo, inv_h)


@pwl_lookup.register_fake
def _(x, tab, lo, inv_h):
    return torch.empty_like(x)


@torch.library.custom_op("actlab_triton::pwl_lookup_bwd", mutates_args=())
def pwl_lookup_bwd(g: Tensor, x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor) -> Tensor:
    """The gradient of x given the output's gradient g (same shape)."""
    if g.shape != x.shape or not g.is_contiguous() or g.dtype != torch.float32:
        raise ValueError("pwl_lookup_bwd: g must be a contiguous float32 tensor shaped as x")
    return _launch(_pwl_bwd_kernel, x, tab, lo, inv_h, g)


@pwl_lookup_bwd.register_fake
def _(g, x, tab, lo, inv_h):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, g: Tensor):
    return pwl_lookup_bwd(g.contiguous(), *ctx.saved_tensors), None, None, None


pwl_lookup.register_autograd(_backward, setup_context=_setup_context)
