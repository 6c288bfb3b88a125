"""slaf's Triton kernels: ``actlab_triton::slaf_fwd`` / ``slaf_bwd``, twins of ``_kernels_slaf.cpp``.

The same maths as the C++ kernels (see ``_kernels_slaf.h``): kind 0, the three-term
bases, runs Clenshaw's rule on the monic polynomials psi_k = phi_k / h_k (coefficients
a_k h_k, rounded once from double; monomials are the case be_k = 0); kind 1, fourier,
reduces z quarter turns exactly and takes the higher harmonics by Chebyshev's recurrence;
kind 2, rbf, takes one exp per centre (the GPU's exp unit is cheap, so the C++ kernel's
exp ratios, which save a CPU's vector exps, are not needed). The end slopes are summed in
double per column, as the C++ kernel does per channel, so that a flat tail (slope 0) is
found where it finds one. Parameters arrive per unit (``coef`` (C, K), ``w`` (C,));
the grid is :func:`actlab._triton.tiles` with ``n_units = coef.shape[0]``.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from actlab import _triton
from actlab._triton_lang import column, store_partial, tile

_MAX_TERMS = 64  # kMaxTerms of the C++ kernels


@triton.jit
def _coef(coef_ptr, scale_ptr, h_ptr, c, C, K: tl.constexpr, k, HAS_SCALE: tl.constexpr, MONIC: tl.constexpr):
    """a_k = coef_k scale_k of each column, [1, BC] (float32, as PyTorch's product); MONIC: a_k h_k."""
    a = column(coef_ptr, c, C, K, k)
    if HAS_SCALE:
        a = a * tl.load(scale_ptr + k)
    if MONIC:
        a = (a.to(tl.float64) * tl.load(h_ptr + k)).to(tl.float32)
    return a


@triton.jit
def _slopes(coef_ptr, scale_ptr, w_ptr, dends_ptr, c, C, inv_r, K: tl.constexpr, HAS_SCALE: tl.constexpr,
            HYBRID: tl.constexpr):
    """The tails' slopes p'(-1), p'(+1) = a . dends of each column, summed in double; the hybrid's
    w relu(x) joins the upper one (slope w * range), so that x = +inf meets no inf - inf."""
    a = _coef(coef_ptr, scale_ptr, coef_ptr, c, C, K, 0, HAS_SCALE, False).to(tl.float64)
    lo = a * tl.load(dends_ptr).to(tl.float64)
    hi = a * tl.load(dends_ptr + K).to(tl.float64)
    for k in tl.static_range(1, K):
        a = _coef(coef_ptr, scale_ptr, coef_ptr, c, C, K, k, HAS_SCALE, False).to(tl.float64)
        lo += a * tl.load(dends_ptr + k).to(tl.float64)
        hi += a * tl.load(dends_ptr + K + k).to(tl.float64)
    if HYBRID:
        hi += column(w_ptr, c, C, 1, 0).to(tl.float64) / inv_r
    return lo.to(tl.float32), hi.to(tl.float32)


@triton.jit
def _clamp(z):
    """z clamped to [-1, 1]; NaN stays NaN (tl.minimum / maximum may drop it)."""
    return tl.where(z < -1.0, -1.0, tl.where(z > 1.0, 1.0, z))


@triton.jit
def _tail(ex, s_lo, s_hi):
    """The linear tail ex * slope; beside a flat tail (slope 0) the excess is clamped to [-1, 1],
    so that +-inf gives 0 there, not 0 * inf (as ``flat_tail``)."""
    e = tl.where((s_hi == 0.0) & (ex > 1.0), 1.0, ex)
    e = tl.where((s_lo == 0.0) & (ex < -1.0), -1.0, e)
    return e * tl.where(ex > 0.0, s_hi, s_lo)


@triton.jit
def _sincos_quarter(z):
    """sin and cos of z quarter turns (angle z pi / 2), as the C++ kernel's: z - n is exact for
    the nearest integer n, Cephes' polynomials on [-pi/4, pi/4], the quadrant n mod 4 swaps and
    negates (found in float, so that no NaN or huge n is cast to an integer)."""
    n = tl.where(tl.abs(z) < 8388608.0, tl.floor(z + 0.5), z)  # beyond 2^23 z is whole
    t = (z - n) * 1.5707963267948966
    t2 = t * t
    sp = t + t * t2 * (-1.6666654611e-1 + t2 * (8.3321608736e-3 + t2 * -1.9515295891e-4))
    cp = 1.0 - 0.5 * t2 + t2 * t2 * (4.166664568298827e-2 + t2 * (-1.388731625493765e-3
                                                                   + t2 * 2.443315711809948e-5))
    q = n - 4.0 * tl.floor(n * 0.25)
    odd = (q == 1.0) | (q == 3.0)
    s = tl.where(odd, cp, sp)
    c = tl.where(odd, sp, cp)
    return tl.where(q >= 2.0, -s, s), tl.where((q == 1.0) | (q == 2.0), -c, c)


@triton.jit
def _fwd_kernel(x_ptr, y_ptr, coef_ptr, scale_ptr, w_ptr, dends_ptr, cst_ptr, h_ptr, inv_r, r_max, inv_w,
                C, S, n_j, BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr, K: tl.constexpr,
                KIND: tl.constexpr, HAS_SCALE: tl.constexpr, HYBRID: tl.constexpr):
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    z = x * inv_r
    if KIND == 1:
        sn, cs = _sincos_quarter(z)
        acc = tl.zeros_like(z) + _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 0, HAS_SCALE, False)
        c2, ck, sk, cp, sp = cs + cs, cs, sn, tl.zeros_like(z) + 1.0, tl.zeros_like(z)
        for k in tl.static_range(1, (K + 1) // 2):  # harmonic k: terms 2k - 1 (cos) and 2k (sin)
            acc += (_coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 2 * k - 1, HAS_SCALE, False) * ck
                    + _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 2 * k, HAS_SCALE, False) * sk)
            if 2 * k + 2 < K:
                ck, sk, cp, sp = c2 * ck - cp, c2 * sk - sp, ck, sk
    else:
        zc = _clamp(z)
        if KIND == 0:  # Clenshaw: b_k = a_k + zc b_{k+1} - be_{k+1} b_{k+2}, p = b_0
            acc = tl.zeros_like(z) + _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, K - 1, HAS_SCALE, True)
            b2 = tl.zeros_like(z)
            for i in tl.static_range(K - 1):
                b = (acc * zc + _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, K - 2 - i, HAS_SCALE, True)
                     - tl.load(cst_ptr + K - 1 - i) * b2)
                b2 = acc
                acc = b
        else:
            acc = tl.zeros_like(z)
            for k in tl.static_range(K):
                d = (zc - tl.load(cst_ptr + k)) * inv_w
                acc += _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, k, HAS_SCALE, False) * tl.exp(-(d * d))
        s_lo, s_hi = _slopes(coef_ptr, scale_ptr, w_ptr, dends_ptr, c, C, inv_r, K, HAS_SCALE, HYBRID)
        acc += _tail(z - zc, s_lo, s_hi)
    if HYBRID:
        xr = x
        if KIND != 1:  # beyond the range w relu(x) is part of the upper tail
            xr = tl.where(x > r_max, r_max, x)
        acc += column(w_ptr, c, C, 1, 0) * tl.where(xr < 0.0, 0.0, xr)
    tl.store(y_ptr + offs, acc, mask=mask)


@triton.jit
def _three_term_bwd(zc, g, mask, part_ptr, coef_ptr, scale_ptr, h_ptr, cst_ptr, c, C, K: tl.constexpr,
                    NP: tl.constexpr, HAS_SCALE: tl.constexpr):
    """g p'(zc), adding the sums of g psi_k to the partials: g psi_k and g psi'_k obey the
    recurrences of psi_k and psi'_k, so g is folded in from the start."""
    dp = tl.zeros_like(g)
    if K > 1:
        q0, q1, d0, d1 = g, g * zc, tl.zeros_like(g), g
        dp = _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 1, HAS_SCALE, True) * g
        store_partial(part_ptr, q1, mask, c, C, NP, 1)
        for k in tl.static_range(1, K - 1):
            be = tl.load(cst_ptr + k)
            q2 = zc * q1 - be * q0
            d2 = zc * d1 + q1 - be * d0
            dp += _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, k + 1, HAS_SCALE, True) * d2
            q0, q1, d0, d1 = q1, q2, d1, d2
            store_partial(part_ptr, q1, mask, c, C, NP, k + 1)
    return dp


@triton.jit
def _bwd_kernel(g_ptr, x_ptr, gx_ptr, part_ptr, coef_ptr, scale_ptr, w_ptr, dends_ptr, cst_ptr, h_ptr, inv_r,
                r_max, inv_w, C, S, n_j, BJ: tl.constexpr, BC: tl.constexpr, FLAT: tl.constexpr, K: tl.constexpr,
                KIND: tl.constexpr, HAS_SCALE: tl.constexpr, HYBRID: tl.constexpr, NP: tl.constexpr):
    """grad_input, and per program the partial sums of g phi_k (k < K), g max(ex, 0), g min(ex, 0)
    (the tails, not fourier) and g relu(x) (hybrid), NP in all."""
    offs, mask, c = tile(C, S, n_j, BJ, BC, FLAT)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    g = tl.load(g_ptr + offs, mask=mask, other=0.0)
    z = x * inv_r
    if KIND != 2:  # phi_0 = 1
        store_partial(part_ptr, g, mask, c, C, NP, 0)
    if KIND == 1:
        sn, cs = _sincos_quarter(z)
        c2, ck, sk, cp, sp = cs + cs, cs, sn, tl.zeros_like(z) + 1.0, tl.zeros_like(z)
        dp = tl.zeros_like(z)
        for k in tl.static_range(1, (K + 1) // 2):
            wk = 1.5707963267948966 * k  # d/dz of the harmonic's phase
            store_partial(part_ptr, g * ck, mask, c, C, NP, 2 * k - 1)
            store_partial(part_ptr, g * sk, mask, c, C, NP, 2 * k)
            dp += ((_coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 2 * k, HAS_SCALE, False) * wk) * ck
                   - (_coef(coef_ptr, scale_ptr, h_ptr, c, C, K, 2 * k - 1, HAS_SCALE, False) * wk) * sk)
            if 2 * k + 2 < K:
                ck, sk, cp, sp = c2 * ck - cp, c2 * sk - sp, ck, sk
        if K % 2 == 0:  # an even K leaves its last term out (a cosine without its sine)
            store_partial(part_ptr, tl.zeros_like(g), mask, c, C, NP, K - 1)
        gx = g * (dp * inv_r)
    else:
        zc = _clamp(z)
        ex = z - zc
        if KIND == 0:
            gx = _three_term_bwd(zc, g, mask, part_ptr, coef_ptr, scale_ptr, h_ptr, cst_ptr, c, C, K, NP,
                                 HAS_SCALE) * inv_r
        else:
            dp = tl.zeros_like(z)
            for k in tl.static_range(K):
                d = (zc - tl.load(cst_ptr + k)) * inv_w
                phi = tl.exp(-(d * d))
                dp += _coef(coef_ptr, scale_ptr, h_ptr, c, C, K, k, HAS_SCALE, False) * ((-2.0 * inv_w) * d * phi)
                store_partial(part_ptr, g * phi, mask, c, C, NP, k)
            gx = g * (dp * inv_r)
        store_partial(part_ptr, g * tl.where(ex < 0.0, 0.0, ex), mask, c, C, NP, K)
        store_partial(part_ptr, g * tl.where(ex > 0.0, 0.0, ex), mask, c, C, NP, K + 1)
    if HYBRID:
        gx += g * tl.where(x > 0.0, column(w_ptr, c, C, 1, 0), 0.0)
        store_partial(part_ptr, g * tl.where(x < 0.0, 0.0, x), mask, c, C, NP, NP - 1)
    tl.store(gx_ptr + offs, gx, mask=mask)


@functools.lru_cache(maxsize=256)
def _basis(kind: int, rec: tuple[float, ...], k: int, device: torch.device) -> tuple[Tensor, Tensor, float]:
    """The per-term constants on the device: float32 be_k (three-term; rbf: the centres) and the
    monic scales h_k in double (three-term, else 1), with rbf's 1 / width (see _kernels_slaf.cpp)."""
    h, cst, inv_w = [1.0] * k, [0.0] * k, 1.0
    if kind == 0:
        _require(len(rec) >= max(1, 2 * k - 3), "rec must be [a0, al_1, ga_1, ...]")
        if k > 1:
            h[1] = rec[0]
        for j in range(1, k - 1):
            h[j + 1] = rec[2 * j - 1] * h[j]
            cst[j] = rec[2 * j] * h[j - 1] / h[j + 1]
    elif kind == 2:
        _require(len(rec) == k + 1, "rec must be [width, centres]")
        inv_w, cst = 1.0 / rec[0], list(rec[1:])
    return (torch.tensor(cst, dtype=torch.float32, device=device),
            torch.tensor(h, dtype=torch.float64, device=device), inv_w)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise RuntimeError(message)


def _launch_args(x: Tensor, coef: Tensor, scale: Tensor | None, w: Tensor | None, dends: Tensor,
                 rec: list[float], inv_range: float, kind: int) -> tuple[_triton.Tiles, tuple, dict]:
    """The tiling, the positional arguments after the kernel's own tensors, and the keywords."""
    _require(coef.dim() == 2 and 1 <= coef.shape[1] <= _MAX_TERMS, f"coef must be (C, K) with K <= {_MAX_TERMS}")
    _require(kind in (0, 1, 2), f"unknown slaf basis kind {kind}")
    k = coef.shape[1]
    _require(kind == 1 or dends.numel() == 2 * k, "dends must be (2, K)")
    _require(scale is None or scale.numel() == k, "scale must have one value per term")
    _require(w is None or w.numel() == coef.shape[0], "w must have one value per channel")
    cst, h, inv_w = _basis(kind, tuple(rec), k, x.device)
    coef = coef.contiguous()
    t = _triton.tiles(x, coef.shape[0])
    args = (coef, coef if scale is None else scale.contiguous(), coef if w is None else w.contiguous(),
            dends.contiguous(), cst, h, inv_range, 1.0 / inv_range, inv_w)
    return t, args, {**t.meta(), "K": k, "KIND": kind, "HAS_SCALE": scale is not None, "HYBRID": w is not None}


@torch.library.custom_op("actlab_triton::slaf_fwd", mutates_args=())
def slaf_fwd(x: Tensor, coef: Tensor, scale: Optional[Tensor], w: Optional[Tensor], dends: Tensor,
             rec: list[float], inv_range: float, kind: int) -> Tensor:
    """slaf with a = coef * scale; see the module docstring."""
    y = torch.empty_like(x)
    if x.numel():
        t, args, meta = _launch_args(x, coef, scale, w, dends, rec, inv_range, kind)
        with _triton.device_guard(x):
            _fwd_kernel[t.grid](x, y, *args, **meta)
    return y


@slaf_fwd.register_fake
def _(x, coef, scale, w, dends, rec, inv_range, kind):
    return torch.empty_like(x)


@torch.library.custom_op("actlab_triton::slaf_bwd", mutates_args=())
def slaf_bwd(g: Tensor, x: Tensor, coef: Tensor, scale: Optional[Tensor], w: Optional[Tensor], dends: Tensor,
             rec: list[float], inv_range: float, kind: int) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients of x, coef (d/da times scale, as the C++ op) and w (empty without w)."""
    gx = torch.empty_like(x)
    if not x.numel():
        return gx, torch.zeros_like(coef), torch.zeros_like(w) if w is not None else coef.new_empty(0)
    t, args, meta = _launch_args(x, coef, scale, w, dends, rec, inv_range, kind)
    k = coef.shape[1]
    n_partials = k + (0 if kind == 1 else 2) + (w is not None)
    part = t.partials(n_partials, x)
    with _triton.device_guard(x):
        _bwd_kernel[t.grid](g, x, gx, part, *args, **meta, NP=n_partials)
    r = part.sum(0, dtype=torch.float64)
    ga = r[:, :k] * args[5] if kind == 0 else r[:, :k]  # the monic scales h_k
    if kind != 1:
        d = args[3].reshape(2, k).double()
        ga = ga + r[:, k + 1, None] * d[0] + r[:, k, None] * d[1]  # the tails
    ga = ga.float()
    if scale is not None:
        ga = ga * scale
    return gx, ga, r[:, -1].float().reshape(w.shape) if w is not None else coef.new_empty(0)


@slaf_bwd.register_fake
def _(g, x, coef, scale, w, dends, rec, inv_range, kind):
    return (torch.empty_like(x), torch.empty_like(coef),
            torch.empty_like(w) if w is not None else coef.new_empty(0))
