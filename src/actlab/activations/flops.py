"""What an activation costs per element: the counting convention and the aten counter.

Counting convention (one number per element of the activation's output):
each add, subtract, multiply, divide, comparison, min/max, abs, floor or
select is 1 flop; a multiply-add is 2; a call to a transcendental function
(exp, log, tanh, erf, sin, ...) is ``TRANSCENDENTAL`` = 10, because a
vectorised libm evaluation is a range reduction plus a polynomial of degree
5-7, i.e. about 10-15 multiply-adds; table reads and views are free. So
ReLU is 1 and tanh 10.

``flops_per_element(module)`` prefers the module's own
``flops_per_element()`` (each learnable family states its formula in its own
file) and otherwise counts the aten operators the module runs on a probe (a
``TorchDispatchMode``), with the costs above, so fixed activations, grammar
expressions and unknown modules are all counted the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

TRANSCENDENTAL = 10.0
_T = TRANSCENDENTAL
# aten operator -> flops per output element; unlisted operators cost 1.
ATEN_COSTS: dict[str, float] = {
    "exp": _T, "exp2": _T, "log": _T, "log2": _T, "log1p": _T, "tanh": _T, "erf": _T, "erfc": _T,
    "sin": _T, "cos": _T, "sinh": _T, "cosh": _T, "asinh": _T, "atan": _T, "expm1": _T,
    "special_i0e": _T, "special_i1e": _T, "i0": _T, "pow": 2 * _T + 1,
    "sigmoid": _T + 2, "silu": _T + 3, "gelu": _T + 4, "elu": _T + 3, "selu": _T + 4, "celu": _T + 4,
    "softplus": 2 * _T + 1, "log_sigmoid_forward": 2 * _T + 2, "mish": 3 * _T + 2,
    "softsign": 3, "hardsigmoid": 3, "hardswish": 4, "hardtanh": 2, "clamp": 2, "clamp_min": 1,
    "clamp_max": 1, "leaky_relu": 2, "prelu": 2, "_prelu_kernel": 2, "relu": 1, "relu6": 2, "tanhshrink": _T + 1,
}
REDUCTIONS = {"sum", "mean", "prod", "amax", "amin", "max", "min", "logsumexp"}
FREE = {
    "view", "_unsafe_view", "reshape", "expand", "clone", "copy_", "detach", "t", "transpose", "permute",
    "_to_copy", "index", "_unsafe_index", "gather", "take", "zeros_like", "ones_like", "empty_like", "zeros",
    "ones", "empty", "full", "full_like", "lift_fresh", "alias", "unsqueeze", "squeeze", "select", "slice",
    "contiguous", "as_strided", "arange", "linspace", "_local_scalar_dense", "new_empty", "new_zeros", "fill_",
    "zero_", "cat", "stack", "split", "unbind", "unfold", "flatten",
}


def _matmul_flops(name: str, args: tuple, out: Tensor) -> float | None:
    if name in ("mm", "bmm", "matmul"):
        return 2.0 * out.numel() * args[0].shape[-1]
    if name in ("addmm", "baddbmm"):
        return 2.0 * out.numel() * args[1].shape[-1] + out.numel()
    return None


class _FlopCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.flops = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name not in FREE and isinstance(out, Tensor):
            matmul = _matmul_flops(name, args, out)
            if matmul is not None:
                self.flops += matmul
            elif name in REDUCTIONS:  # n inputs folded into one output: n - 1 operations
                self.flops += args[0].numel() - out.numel()
            else:
                self.flops += ATEN_COSTS.get(name.rstrip("_"), 1.0) * out.numel()
        return out


def counted_flops_per_element(module: nn.Module, width: int = 1, ndim: int = 2, n: int = 64) -> float:
    """Flops per output element, counted from the aten operators ``module`` runs."""
    x = torch.linspace(-3.0, 3.0, n).repeat_interleave(width).reshape(n, width, *([1] * (max(ndim, 2) - 2)))
    counter = _FlopCounter()
    with torch.no_grad(), counter:
        y = module(x)
    return counter.flops / y.numel()


def flops_per_element(module: nn.Module, width: int = 1, ndim: int = 2) -> float:
    """The module's own ``flops_per_element()`` when it has one, else the counted figure."""
    own = getattr(module, "flops_per_element", None)
    if callable(own):
        return float(own())
    return counted_flops_per_element(module, width, ndim)
