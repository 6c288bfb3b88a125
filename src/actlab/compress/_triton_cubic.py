"""The cubic spline table on CUDA: ``torch.ops.actlab_triton.cubic_lookup``, a Triton kernel, and its input gradient.

``CubicActivation``'s formula is some fifteen passes over memory forward and
as many backward; this kernel makes one. Per element, as the formula does:
u = (x - lo) inv_h with inv_h = (K-1) / (hi - lo) (as torch computes it:
an IEEE reciprocal times K-1), i = min(max(floor(u), 0), K-2) (NaN reads segment 0, where t = NaN
gives y = NaN), t = clamp(u - i, 0, 1), y = P(t) + P'(t) e with P the
segment's cubic, P' = (3 c3 t + 2 c2) t + c1 its slope and e = u - i - t the
excess beyond the range, clamped to [-1, 1] on the side of a flat tail
(``CubicActivation.clamps``). The same float32 operations in the same order,
without fused multiply-adds (``enable_fp_fusion=False``): the formula's bits.

Arguments are the module's buffers: ``coef`` (C, K-1, 4), ``lo`` and ``hi``
(C,), ``clamps`` (C, 2); C = 1 shares the spline over an input of any shape,
else channels lie along dim 1. The gradient is the formula's autograd, which
reduces to g P'(t) inv_h where e's clamp passes it (inside the range e = 0;
beyond it the tail line's slope; zero beyond a flat tail's clamp and for NaN).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import tile


@triton.jit
def _spline(x, coef_ptr, lo_ptr, hi_ptr, clamps_ptr, c, C, K, mask):
    """Per element: P(t), P'(t), the clamped excess e (all [BJ, BC]) and inv_h ([1, BC])."""
    col = c < C
    lo = tl.load(lo_ptr + c, mask=col, other=0.0)[None, :]
    hi = tl.load(hi_ptr + c, mask=col, other=1.0)[None, :]
    lc = tl.load(clamps_ptr + 2 * c, mask=col, other=0.0)[None, :]
    uc = tl.load(clamps_ptr + 2 * c + 1, mask=col, other=0.0)[None, :]
    last = (K - 2) * 1.0
    # torch's (K-1) / t is reciprocal(t) * (K-1); div_rn does not broadcast, hence a tile of ones
    inv_h = tl.math.div_rn(tl.zeros_like(hi) + 1.0, hi - lo) * (last + 1.0)
    u = (x - lo) * inv_h
    f = tl.floor(u)
    f = tl.where(f > 0.0, f, 0.0)  # NaN > 0 is false: segment 0, an index in bounds
    f = tl.where(f < last, f, last)
    r = u - f
    t = tl.where(r < 0.0, 0.0, tl.where(r > 1.0, 1.0, r))  # NaN stays NaN
    seg = coef_ptr + (c[None, :].to(tl.int64) * (K - 1) + f.to(tl.int64)) * 4
    c0 = tl.load(seg, mask=mask, other=0.0)
    c1 = tl.load(seg + 1, mask=mask, other=0.0)
    c2 = tl.load(seg + 2, mask=mask, other=0.0)
    c3 = tl.load(seg + 3, mask=mask, other=0.0)
    y = ((c3 * t + c2) * t + c1) * t + c0
    slope = (3.0 * c3 * t + 2.0 * c2) * t + c1
    e = r - t
    e_clamped = tl.where(e < lc, lc, tl.where(e > uc, uc, e))
    keep = (e >= lc) & (e <= uc)  # torch.clamp passes the gradient there, which NaN fails
    return y, slope, e_clamped, keep, inv_h


@triton.jit
def _cubic_fwd_kernel(x_ptr, coef_ptr, lo_ptr, hi_ptr, clamps_ptr, y_ptr, K, C, S, n_j,
                      BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    y, slope, e, keep, inv_h = _spline(x, coef_ptr, lo_ptr, hi_ptr, clamps_ptr, c, C, K, mask)
    tl.store(y_ptr + offs, y + slope * e, mask=mask)


@triton.jit
def _cubic_bwd_kernel(g_ptr, x_ptr, coef_ptr, lo_ptr, hi_ptr, clamps_ptr, dx_ptr, K, C, S, n_j,
                      BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    y, slope, e, keep, inv_h = _spline(x, coef_ptr, lo_ptr, hi_ptr, clamps_ptr, c, C, K, mask)
    tl.store(dx_ptr + offs, tl.where(keep, g * slope, 0.0) * inv_h, mask=mask)


def _check(x: Tensor, coef: Tensor, lo: Tensor, hi: Tensor, clamps: Tensor) -> None:
    """Out-of-bounds reads on a GPU would not raise."""
    if x.dtype != torch.float32 or not x.is_contiguous():
        raise ValueError("cubic_lookup: x must be a contiguous float32 tensor")
    if not (_triton.same_device(x, coef, lo, hi, clamps) and coef.is_contiguous() and clamps.is_contiguous()):
        raise ValueError("cubic_lookup: the tables must be contiguous float32 tensors on x's device")
    channels = coef.shape[0] if coef.ndim == 3 else 0
    if coef.ndim != 3 or coef.shape[1] < 1 or coef.shape[2] != 4 or clamps.shape != (channels, 2):
        raise ValueError(f"cubic_lookup: coef must be (C, K-1, 4) and clamps (C, 2), got {tuple(coef.shape)}, "
                         f"{tuple(clamps.shape)}")
    if lo.numel() != channels or hi.numel() != channels:
        raise ValueError("cubic_lookup: lo and hi need one entry per channel")
    if channels != 1 and (x.ndim < 2 or x.shape[1] != channels):
        raise ValueError(f"cubic_lookup: x needs the {channels} channels along dim 1, got {tuple(x.shape)}")


def _launch(kernel, x: Tensor, coef: Tensor, lo: Tensor, hi: Tensor, clamps: Tensor, *tensors: Tensor) -> Tensor:
    """``kernel`` over x's tiles with ``tensors`` before x and a fresh output after the tables."""
    _check(x, coef, lo, hi, clamps)
    out = torch.empty_like(x)
    if x.numel():
        t = _triton.tiles(x, coef.shape[0])
        with _triton.device_guard(x):
            kernel[t.grid](*tensors, x, coef, lo.contiguous(), hi.contiguous(), clamps, out, coef.shape[1] + 1,
                           **t.meta(), enable_fp_fusion=False)
    return out


@torch.library.custom_op("actlab_triton::cubic_lookup", mutates_args=())
def cubic_lookup(x: Tensor, coef: Tensor, lo: Tensor, hi: Tensor, clamps: Tensor) -> Tensor:
    """The spline at x (see the module docstring)."""
    return _launch(_cubic_fwd_kernel, x, coef, lo, hi, clamps)


@cubic_lookup.register_fake
def _(x, coef, lo, hi, clamps):
    return torch.empty_like(x)


@torch.library.custom_op("actlab_triton::cubic_lookup_bwd", mutates_args=())
def cubic_lookup_bwd(g: Tensor, x: Tensor, coef: Tensor, lo: Tensor, hi: Tensor, clamps: Tensor) -> Tensor:
    """The gradient of x given the output's gradient g (same shape)."""
    if g.shape != x.shape or not g.is_contiguous() or g.dtype != torch.float32:
        raise ValueError("cubic_lookup_bwd: g must be a contiguous float32 tensor shaped as x")
    return _launch(_cubic_bwd_kernel, x, coef, lo, hi, clamps, g)


@cubic_lookup_bwd.register_fake
def _(g, x, coef, lo, hi, clamps):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, g: Tensor):
    return cubic_lookup_bwd(g.contiguous(), *ctx.saved_tensors), None, None, None, None


cubic_lookup.register_autograd(_backward, setup_context=_setup_context)
