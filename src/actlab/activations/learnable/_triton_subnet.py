"""Triton twins of ``actlab_learnable::subnet_fwd`` / ``subnet_bwd`` (``_kernels_subnet.cpp``).

y = sum_h w_out[h] act(w_in[h] x + b_in[h]) + b_out, act 0 = tanh, 1 = relu,
parameters (C, H) and (C,), the width H (up to 64) a ``tl.constexpr``: the
hidden units are an unrolled loop over each tile, so nothing H-wide is stored,
and the backward recomputes the pre-activations from x. tanh is the C++
kernel's odd 13/6 minimax rational (Eigen's, XLA's), clamped so that it is
exactly +-1 beyond |z| = 9 as float32 tanh is: within 4e-7 of tanh, relative
accuracy kept near 0, NaN kept, and the same values as the C++ kernel, which a
form in exp would not give (1 - exp(-2|z|) loses the relative accuracy near 0).
Where an infinite input meets inf - inf or 0 * inf (a NaN output), the output is
the limit, from the weights in float64 as ``Net::set_limits``; a program
computes it only when its tile holds such an output.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import column, store_partial, tile

MAX_HIDDEN = 64  # kMaxHidden in _kernels_subnet.cpp
_TANH, _RELU = 0, 1  # enum Act


@triton.jit
def _clamp(z, lo, hi):
    """z clamped to [lo, hi], NaN kept."""
    return tl.where(z < lo, lo, tl.where(z > hi, hi, z))


@triton.jit
def _tanh(z):
    """The C++ kernel's vtanh: the 13/6 minimax rational on z clamped to +-9, clamped to +-1."""
    z = _clamp(z, -9.0, 9.0)
    z2 = z * z
    p = z2 * -2.76076847742355e-16 + 2.00018790482477e-13
    p = p * z2 + -8.60467152213735e-11
    p = p * z2 + 5.12229709037114e-08
    p = p * z2 + 1.48572235717979e-05
    p = p * z2 + 6.37261928875436e-04
    p = p * z2 + 4.89352455891786e-03
    q = z2 * 1.19825839466702e-06 + 1.18534705686654e-04
    q = q * z2 + 2.26843463243900e-03
    q = q * z2 + 4.89352518554385e-03
    return _clamp(z * p / q, -1.0, 1.0)


@triton.jit
def _act(pre, ACT: tl.constexpr):
    if ACT == 0:
        return _tanh(pre)
    return tl.where(pre < 0.0, 0.0, pre)  # relu, NaN kept (max(0, NaN) is NaN in the C++ kernel)


@triton.jit
def _tanh64(b):
    """tanh in float64 for the limits (std::tanh in the C++ kernel): saturates to +-1, keeps NaN."""
    e = tl.exp(-2.0 * tl.abs(b))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(b < 0.0, -t, t)


@triton.jit
def _limit(wi_ptr, bi_ptr, wo_ptr, bo_ptr, c, C, D: tl.constexpr, H: tl.constexpr, ACT: tl.constexpr):
    """Each column's limit at D * inf (D = +-1), [1, BC] float32: every pre-activation w x + b goes
    to +-inf (or stays b where w = 0); tanh gives +-1, relu passes the line on or gives 0."""
    value = column(bo_ptr, c, C, 1, 0).to(tl.float64)
    slope = tl.zeros_like(value)
    for h in tl.static_range(H):
        a = column(wi_ptr, c, C, H, h).to(tl.float64) * D
        b = column(bi_ptr, c, C, H, h).to(tl.float64)
        o = column(wo_ptr, c, C, H, h).to(tl.float64)
        if ACT == 0:
            value += o * tl.where(a > 0.0, 1.0, tl.where(a < 0.0, -1.0, _tanh64(b)))
        else:
            slope += tl.where(a > 0.0, o * a, 0.0)
            value += tl.where(a > 0.0, o * b, tl.where(a == 0.0, o * tl.where(b < 0.0, 0.0, b), 0.0))
    inf = float("inf")
    return tl.where(slope > 0.0, inf, tl.where(slope < 0.0, -inf, value)).to(tl.float32)


@triton.jit
def _subnet_fwd_kernel(x_ptr, wi_ptr, bi_ptr, wo_ptr, bo_ptr, y_ptr, C, S, n_j, BJ: tl.constexpr,
                       BC: tl.constexpr, FLAT: tl.constexpr, H: tl.constexpr, ACT: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    acc = tl.zeros_like(x)
    for h in tl.static_range(H):
        pre = x * column(wi_ptr, c, C, H, h) + column(bi_ptr, c, C, H, h)
        acc += column(wo_ptr, c, C, H, h) * _act(pre, ACT)
    y = acc + column(bo_ptr, c, C, 1, 0)
    bad = (y != y) & (tl.abs(x) == float("inf"))
    if tl.max(bad.to(tl.int32)) > 0:  # rare: an infinite input met inf - inf or 0 * inf
        lo = _limit(wi_ptr, bi_ptr, wo_ptr, bo_ptr, c, C, -1.0, H, ACT)
        hi = _limit(wi_ptr, bi_ptr, wo_ptr, bo_ptr, c, C, 1.0, H, ACT)
        y = tl.where(bad, tl.where(x > 0.0, hi, lo), y)
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def _subnet_bwd_kernel(g_ptr, x_ptr, wi_ptr, bi_ptr, wo_ptr, gx_ptr, part_ptr, C, S, n_j, BJ: tl.constexpr,
                       BC: tl.constexpr, FLAT: tl.constexpr, H: tl.constexpr, ACT: tl.constexpr):
    """Per unit the sums of g act(pre) (w_out), gpre (b_in), gpre x (w_in); then g (b_out).
    The reference's derivatives: tanh' = 1 - tanh^2 from the value; relu passes g unless relu(pre) <= 0."""
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    K: tl.constexpr = 3 * H + 1
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    gx = tl.zeros_like(x)
    for h in tl.static_range(H):
        wi = column(wi_ptr, c, C, H, h)
        a = _act(x * wi + column(bi_ptr, c, C, H, h), ACT)
        gh = g * column(wo_ptr, c, C, H, h)
        if ACT == 0:
            gp = gh * (1.0 - a * a)
        else:
            gp = tl.where(a <= 0.0, 0.0, gh)
        gx += gp * wi
        store_partial(part_ptr, g * a, mask, c, C, K, h)
        store_partial(part_ptr, gp, mask, c, C, K, H + h)
        store_partial(part_ptr, gp * x, mask, c, C, K, 2 * H + h)
    store_partial(part_ptr, g, mask, c, C, K, 3 * H)
    tl.store(gx_ptr + offs, gx, mask=mask)


def _check(x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor, act: int) -> None:
    torch._check(x.is_contiguous(), lambda: "x must be contiguous")
    torch._check(w_in.dim() == 2 and b_in.shape == w_in.shape and w_out.shape == w_in.shape,
                 lambda: f"w_in, b_in and w_out must be (C, H), got {w_in.shape}, {b_in.shape}, {w_out.shape}")
    torch._check(b_out.dim() == 1 and b_out.shape[0] == w_in.shape[0],
                 lambda: f"b_out must be (C,), got {tuple(b_out.shape)}")
    torch._check(1 <= w_in.shape[1] <= MAX_HIDDEN,
                 lambda: f"subnet kernels hold 1 to {MAX_HIDDEN} hidden units, got {w_in.shape[1]}")
    torch._check(act in (_TANH, _RELU), lambda: f"act must be 0 (tanh) or 1 (relu), got {act}")


@torch.library.custom_op("actlab_triton::subnet_fwd", mutates_args=())
def subnet_fwd(x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor, act: int) -> Tensor:
    _check(x, w_in, b_in, w_out, b_out, act)
    y = torch.empty_like(x)
    if x.numel():
        t = _triton.tiles(x, w_in.shape[0])
        with _triton.device_guard(x):
            _subnet_fwd_kernel[t.grid](x, w_in.contiguous(), b_in.contiguous(), w_out.contiguous(),
                                       b_out.contiguous(), y, **t.meta(), H=w_in.shape[1], ACT=act)
    return y


@subnet_fwd.register_fake
def _(x, w_in, b_in, w_out, b_out, act):
    return torch.empty_like(x)


@torch.library.custom_op("actlab_triton::subnet_bwd", mutates_args=())
def subnet_bwd(g: Tensor, x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor,
               act: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    _check(x, w_in, b_in, w_out, b_out, act)
    torch._check(g.shape == x.shape and g.is_contiguous(), lambda: "grad must be contiguous and shaped like x")
    gx = torch.empty_like(x)
    if not x.numel():
        return gx, torch.zeros_like(w_in), torch.zeros_like(b_in), torch.zeros_like(w_out), torch.zeros_like(b_out)
    hidden = w_in.shape[1]
    t = _triton.tiles(x, w_in.shape[0])
    part = t.partials(3 * hidden + 1, x)
    with _triton.device_guard(x):
        _subnet_bwd_kernel[t.grid](g, x, w_in.contiguous(), b_in.contiguous(), w_out.contiguous(), gx, part,
                                   **t.meta(), H=hidden, ACT=act)
    # fresh tensors each: slices of one (1, K) row would be views of each other
    gwo, gbi, gwi, gbo = (t.clone(memory_format=torch.contiguous_format)
                          for t in part.sum(0).split([hidden, hidden, hidden, 1], 1))
    return gx, gwi, gbi, gwo, gbo.reshape(-1)


@subnet_bwd.register_fake
def _(g, x, w_in, b_in, w_out, b_out, act):
    return (torch.empty_like(x), torch.empty_like(w_in), torch.empty_like(b_in), torch.empty_like(w_out),
            torch.empty_like(b_out))
