"""The operators of the activation-function grammar.

The grammar is the one of Bingham & Miikkulainen, "Efficient Activation Function
Optimization through Surrogate Modeling" (NeurIPS 2023,
https://arxiv.org/abs/2301.05785): a leaf ``x``, 27 unary operators, 7 binary and
4 n-ary ones. Operators follow their TensorFlow definitions so that search
results are comparable with the paper's benchmark: ``reciprocal``, ``div`` and
``pow`` may give ``inf``/``nan`` (the search drops such functions rather than
silently patching them), and ``hard_sigmoid`` is TensorFlow 2's
``clip(0.2 x + 0.5, 0, 1)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import reduce

import torch
import torch.nn.functional as F
from torch import Tensor

Unary = Callable[[Tensor], Tensor]
Binary = Callable[[Tensor, Tensor], Tensor]

# SELU constants from Klambauer et al. 2017, as used by torch and TensorFlow.
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


def hard_sigmoid(x: Tensor) -> Tensor:
    """TensorFlow 2's piecewise-linear sigmoid, ``clip(0.2 x + 0.5, 0, 1)``."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


UNARY: dict[str, Unary] = {
    "zero": torch.zeros_like,
    "one": torch.ones_like,
    "identity": lambda x: x,
    "negative": torch.neg,
    "abs": torch.abs,
    "reciprocal": torch.reciprocal,
    "square": torch.square,
    "exp": torch.exp,
    "erf": torch.erf,
    "erfc": torch.erfc,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "expm1": torch.expm1,
    "sigmoid": torch.sigmoid,
    "log_sigmoid": F.logsigmoid,
    "arcsinh": torch.asinh,
    "arctan": torch.atan,
    "bessel_i0e": torch.special.i0e,
    "bessel_i1e": torch.special.i1e,
    "relu": torch.relu,
    "elu": F.elu,
    "selu": F.selu,
    "swish": swish,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "hard_sigmoid": hard_sigmoid,
}

BINARY: dict[str, Binary] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "pow": torch.pow,
    "max": torch.maximum,
    "min": torch.minimum,
}

# An n-ary operator folds its binary counterpart over two or more arguments.
NARY: dict[str, Binary] = {
    "sum_n": torch.add,
    "prod_n": torch.mul,
    "max_n": torch.maximum,
    "min_n": torch.minimum,
}


def apply_nary(name: str, args: list[Tensor]) -> Tensor:
    return reduce(NARY[name], args)


def operator_names() -> list[str]:
    return sorted([*UNARY, *BINARY, *NARY])


def arity(name: str) -> tuple[int, float]:
    """The (min, max) number of arguments an operator takes."""
    if name in UNARY:
        return 1, 1
    if name in BINARY:
        return 2, 2
    if name in NARY:
        return 2, math.inf
    raise KeyError(name)
