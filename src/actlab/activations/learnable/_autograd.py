"""Memory-lean autograd kernels for slaf (spline: ``_autograd_spline``, rational: ``_autograd_rational``).

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
from actlab.activations.learnable._autograd_spline import flat_tail
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
