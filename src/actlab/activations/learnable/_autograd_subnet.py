"""The fused path of subnet: one hidden layer, tanh or relu, up to 64 units (issue 13).

``Subnet.forward`` takes :class:`SubnetFn` when :func:`fused_act` names the
kernel's activation and :func:`takes` says the kernels run this call (float32
CPU, contiguous input, ``ACTLAB_KERNELS`` on, built); every other case keeps
the broadcast path. The Function saves the input and the parameters only, so a
site costs one saved tensor instead of ``H + 1``; backward recomputes the
hidden pre-activations in ``_kernels_subnet.cpp``.

:func:`reference_grads` is the backward in PyTorch ops, taken where the kernels
cannot run at backward time: under ``create_graph=True`` (it is
differentiable; the kernel is not) or when the kernels were switched off
between forward and backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab.activations.learnable import _kernels
from actlab.activations.learnable._sharing import reduce_units

MAX_HIDDEN = 64  # kMaxHidden in _kernels_subnet.cpp: the weights live on the kernel's stack
ACTS = {"tanh": 0, "relu": 1}  # enum Act in _kernels_subnet.cpp


def fused_act(inner: str, depth: int, hidden: int) -> int | None:
    """The kernel's code for a subnet's activation, or None where the kernel does not apply."""
    if depth != 1 or hidden > MAX_HIDDEN:
        return None
    return ACTS.get(inner.strip())


def takes(x: Tensor, n_units: int, *params: Tensor) -> bool:
    """Whether the kernels run this call; a wrong channel count is left to the reference's error."""
    if n_units > 1 and (x.dim() < 2 or x.shape[1] != n_units):
        return False
    return _kernels.usable(x, *params)


class SubnetFn(torch.autograd.Function):
    """y = sum_h w_out[h] act(w_in[h] x + b_in[h]) + b_out, parameters (C, H) and (C,).

    Only for calls that :func:`takes`: the forward has no reference of its own
    (that is ``Subnet.forward``'s broadcast path)."""

    @staticmethod
    def forward(ctx, x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor, act: int) -> Tensor:
        ctx.save_for_backward(x, w_in, b_in, w_out, b_out)
        ctx.act = act
        return _kernels.subnet_forward(x, w_in, b_in, w_out, b_out, act)

    @staticmethod
    def backward(ctx, g: Tensor):
        x, w_in, b_in, w_out, b_out = ctx.saved_tensors
        if not torch.is_grad_enabled() and _kernels.usable(x, w_in, b_in, w_out, b_out):
            return *_kernels.subnet_backward(g, x, w_in, b_in, w_out, b_out, ctx.act), None
        return *reference_grads(g, x, w_in, b_in, w_out, b_out, ctx.act), None


def reference_grads(g: Tensor, x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor,
                    act: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of the input and the parameters, with the derivatives autograd uses for
    the broadcast path: tanh' = 1 - tanh^2, and relu passes g unless relu(pre) <= 0."""
    c = w_in.shape[0]
    view = [c] + [1] * (x.dim() - 2) + [w_in.shape[1]] if c > 1 else [w_in.shape[1]]
    xe, ge = x.unsqueeze(-1), g.unsqueeze(-1)
    a = torch.addcmul(b_in.view(view), xe, w_in.view(view))
    a = torch.tanh(a) if act == ACTS["tanh"] else torch.relu(a)
    gh = ge * w_out.view(view)
    gpre = gh * (1 - a * a) if act == ACTS["tanh"] else torch.where(a <= 0, torch.zeros_like(gh), gh)
    gx = (gpre * w_in.view(view)).sum(-1)
    return (gx, _unit_sums(gpre * xe, c), _unit_sums(gpre, c), _unit_sums(ge * a, c),
            reduce_units(g, c).reshape(b_out.shape))


def _unit_sums(t: Tensor, c: int) -> Tensor:
    """(..., H) summed over every dim but the channels (dim 1) and the units: (C, H)."""
    if c == 1:
        return t.reshape(-1, t.shape[-1]).sum(0, keepdim=True)
    return t.sum([d for d in range(t.dim() - 1) if d != 1])
