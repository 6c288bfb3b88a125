"""Which compressed-module calls take the Triton kernels: float32 CUDA inputs, training included.

The kernels (:mod:`actlab.compress._triton_pwl` for ``PWLActivation``,
:mod:`actlab.compress._triton_cubic` for ``CubicActivation``) import triton,
so they load on the first call that can use them
(:class:`actlab._triton.TritonLibrary`), never at ``import actlab``; without
triton, one warning and the formula runs. Under
``torch.compile`` the operator is one node of the graph; tracing and export
keep the formula's standard ops (ONNX has no translation of the custom op), as
the learnable families' kernels do. Kept apart from ``modules.py`` so that a
CPU call pays one function call and one device test for it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab import _cpp, _triton

PWL = _triton.TritonLibrary("actlab_pwl", ["actlab.compress._triton_pwl"])
CUBIC = _triton.TritonLibrary("actlab_cubic", ["actlab.compress._triton_cubic"])


# Under torch.compile these run once while tracing and their answers are baked into the graph.
@_cpp.assume_constant_result
def _ready() -> bool:
    return PWL.load()


@_cpp.assume_constant_result
def _cubic_ready() -> bool:
    return CUBIC.load()


def _takes(x: Tensor, channels: int, *tables: Tensor) -> bool:
    """float32 contiguous x for the kernels (and not traced or exported), its channels those of the tables."""
    if not (_triton.takes(x) and x.dtype == torch.float32 and x.is_contiguous() and _cpp.kernels_enabled()):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        return False
    if channels != 1 and (x.ndim < 2 or x.shape[1] != channels):
        return False  # the formula raises the module's error
    return _triton.same_device(x, *tables)


def pwl(x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor) -> Tensor | None:
    """``PWLActivation``'s table at x by the Triton kernel, or None where it does not take the call."""
    if not (_takes(x, tab.shape[0], tab, lo, inv_h) and _ready()):
        return None
    return torch.ops.actlab_triton.pwl_lookup(x, tab, lo, inv_h)


def cubic(x: Tensor, coef: Tensor, lo: Tensor, hi: Tensor, clamps: Tensor) -> Tensor | None:
    """``CubicActivation``'s spline at x by the Triton kernel, or None where it does not take the call."""
    if not (_takes(x, coef.shape[0], coef, lo, hi, clamps) and _cubic_ready()):
        return None
    return torch.ops.actlab_triton.cubic_lookup(x, coef, lo, hi, clamps)
