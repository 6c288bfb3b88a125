"""What activations and models cost: FLOPs per element, model FLOPs, latency.

Counting convention (one number per element of the activation's output):
each add, subtract, multiply, divide, comparison, min/max, abs, floor or
select is 1 flop; a multiply-add is 2; a call to a transcendental function
(exp, log, tanh, erf, sin, ...) is ``TRANSCENDENTAL`` = 10, because a
vectorised libm evaluation is a range reduction plus a polynomial of degree
5-7, i.e. about 10-15 multiply-adds; table reads and views are free. So
ReLU is 1 and tanh 10.

``flops_per_element(module)`` prefers the module's own
``flops_per_element()`` and otherwise counts the aten operators the module
runs on a probe (a ``TorchDispatchMode``), with the costs above, so fixed
activations, grammar expressions and unknown modules are all counted the
same way. The ``*_flops`` formulas below are for the learnable families to
quote from their ``flops_per_element``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.modules import conv
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


def relu_flops() -> float:
    return 1.0


def poly_flops(degree: int) -> float:
    """A polynomial by Horner: one multiply-add per degree."""
    return 2.0 * degree


def rational_flops(m: int, n: int) -> float:
    """A "safe" Padé activation P(x) / (1 + |Q(x)|) (Molina et al. 2020), P of degree m,
    Q of degree n without constant term: Horner 2m + 2n, then abs, add, divide."""
    return 2.0 * m + 2.0 * n + 3.0


SLAF_PER_DEGREE = {"monomial": 2.0, "power": 2.0, "chebyshev": 4.0, "hermite": 4.0, "legendre": 5.0,
                   "fourier": 8.0, "rbf": 4.0 + TRANSCENDENTAL}
# scale x by 1/range, clamp to [-1, 1], and the linear tail beyond it (excess * edge slope + add)
SLAF_OVERHEAD = 5.0


def slaf_flops(degree: int, basis: str = "monomial", hybrid: bool = False) -> float:
    """sum_k a_k B_k(x): Horner for monomials (2 per degree); a three-term recurrence
    (chebyshev T_{k+1} = 2x T_k - T_{k-1}: mul + sub, plus the accumulate's multiply-add: 4;
    legendre needs one more multiply for its coefficients: 5) for the orthogonal bases;
    fourier: sin/cos of the harmonics by the angle-addition recurrence (4 mul + 2 add) and two
    multiply-adds; rbf: difference, square, scale, exp and a multiply-add per centre. Plus the
    input scaling with linear tails, and a weighted ReLU (3) for the hybrid form."""
    return SLAF_PER_DEGREE[basis] * degree + SLAF_OVERHEAD + (3.0 if hybrid else 0.0)


def spline_flops(kind: str = "linear") -> float:
    """A learnable spline on a uniform grid costs what its compressed counterpart costs."""
    return 8.0 if kind == "linear" else 22.0


def subnet_flops(hidden: int, depth: int = 1, act_flops: float = TRANSCENDENTAL) -> float:
    """A 1 -> H -> ... -> H -> 1 network per element with ``depth`` hidden layers:
    2H (input multiply-add) + (depth - 1) 2H^2 (hidden layers, with bias) + 2H (output)
    + depth H act_flops."""
    return 4.0 * hidden + (depth - 1) * 2.0 * hidden**2 + depth * hidden * act_flops


@dataclass
class ModelCost:
    """FLOPs per sample, split into layers and activations, and the parameter count."""

    flops: float
    layer_flops: float
    activation_flops: float
    params: int
    stored: int  # numbers kept at inference: parameters plus buffers (lookup tables, norm statistics)
    per_site: dict[str, float] = field(default_factory=dict)


def layer_flops(module: nn.Module, x: Tensor, y: Tensor) -> float:
    """2 x MACs (+ one add per output for the bias) of a Linear or Conv call."""
    bias = y.numel() if getattr(module, "bias", None) is not None else 0
    if isinstance(module, nn.Linear):
        return 2.0 * y.numel() * module.in_features + bias
    if isinstance(module, conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return 2.0 * y.numel() * per_output + bias
    return 0.0


def model_cost(model: nn.Module, sample: Tensor) -> ModelCost:
    """FLOPs per sample of ``model`` on ``sample`` (a batch): Linear/Conv layers and
    activation sites; other layers (norms, pooling) are not counted."""
    from actlab.compress.surgery import find_activations  # surgery imports the fitting stack

    sites = {id(m): n for n, m in find_activations(model).items()}
    modules = {id(m): m for m in model.modules()}
    layers = [0.0]
    elements: dict[int, int] = {}
    shapes: dict[int, tuple[int, int]] = {}  # (width, ndim) of each site's input

    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if id(module) in sites:
            x = inputs[0]
            shapes[id(module)] = (x.shape[1] if x.ndim > 1 else 1, x.ndim)
            elements[id(module)] = elements.get(id(module), 0) + output.numel()
        else:
            layers[0] += layer_flops(module, inputs[0], output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if id(m) in sites or isinstance(m, (nn.Linear, conv._ConvNd))]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    batch = sample.shape[0]
    # counted after the forward pass: probing a module inside its own hook would recurse
    per_site = {sites[key]: flops_per_element(modules[key], *shapes[key]) * n / batch
                for key, n in elements.items()}
    acts = sum(per_site.values())
    params = sum(p.numel() for p in model.parameters())
    stored = params + sum(b.numel() for b in model.buffers())
    return ModelCost(layers[0] / batch + acts, layers[0] / batch, acts, params, stored, per_site)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...] = (1, 256),
                    repeats: int = 20, warmup: int = 3) -> dict[int, float]:
    """Median seconds per forward call of ``model`` in eval mode under ``torch.inference_mode``."""
    was_training = model.training
    model.eval()
    result = {}
    try:
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.randn(batch, *input_shape)
                for _ in range(warmup):
                    model(x)
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    model(x)
                    times.append(time.perf_counter() - start)
                result[batch] = statistics.median(times)
    finally:
        model.train(was_training)
    return result
