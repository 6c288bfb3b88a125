"""Fused CPU kernels for slaf, spline, rational and subnet (``_kernels*.cpp``).

The PyTorch paths in ``_autograd`` make 15-60 passes over memory per
forward + backward (subnet's broadcast path writes H-wide tensors); these
kernels make one pass forward (read x, write y) and one backward (read x and
g, write grad_input, sum the parameter gradients per channel on the way, in
double). They run for float32 CPU tensors with a
contiguous input; float32 CUDA tensors take their Triton twins in
``torch.ops.actlab_triton`` (``_triton_*.py``, same schemas, parameter gradients
summed in float32; see :mod:`actlab._triton`); everything else (float64, so that
``gradcheck`` keeps testing the reference, strided inputs, ``ACTLAB_KERNELS=0``,
a failed build, slaf's ``standardize``) takes the PyTorch path.

The operators live in ``torch.ops.actlab_learnable`` with fake implementations,
so ``torch.compile`` keeps them as single calls in its graph instead of
breaking the graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from actlab import _cpp, _triton
from actlab.activations.learnable.bases import BASES, RBF, Fourier, ThreeTerm

_MAX_TERMS = 64  # kMaxTerms in _kernels.h


def _register_fakes() -> None:
    lib = "actlab_learnable::"

    @torch.library.register_fake(lib + "slaf_fwd")
    def _(x, coef, scale, w, dends, rec, inv_range, kind):
        return torch.empty_like(x)

    @torch.library.register_fake(lib + "slaf_bwd")
    def _(g, x, coef, scale, w, dends, rec, inv_range, kind):
        return (torch.empty_like(x), torch.empty_like(coef),
                torch.empty_like(w) if w is not None else coef.new_empty(0))

    @torch.library.register_fake(lib + "spline_fwd")
    def _(x, table, inv_h, offset):
        return torch.empty_like(x)

    @torch.library.register_fake(lib + "spline_bwd")
    def _(g, x, table, inv_h, offset):
        return torch.empty_like(x), torch.empty_like(table)

    for kind in ("linear", "cubic"):  # the splines on their knot values
        torch.library.register_fake(lib + f"{kind}_spline_fwd")(lambda x, values, lo, hi: torch.empty_like(x))
        torch.library.register_fake(lib + f"{kind}_spline_bwd")(
            lambda g, x, values, lo, hi: (torch.empty_like(x), torch.empty_like(values)))

    @torch.library.register_fake(lib + "rational_fwd")
    def _(x, a, b):
        return torch.empty_like(x)

    @torch.library.register_fake(lib + "rational_bwd")
    def _(g, x, a, b):
        return torch.empty_like(x), torch.empty_like(a), torch.empty_like(b)

    @torch.library.register_fake(lib + "subnet_fwd")
    def _(x, w_in, b_in, w_out, b_out, act):
        return torch.empty_like(x)

    @torch.library.register_fake(lib + "subnet_bwd")
    def _(g, x, w_in, b_in, w_out, b_out, act):
        return (torch.empty_like(x), torch.empty_like(w_in), torch.empty_like(b_in), torch.empty_like(w_out),
                torch.empty_like(b_out))


_HERE = Path(__file__).parent
_FAMILIES = ("slaf", "spline", "spline_values", "rational", "subnet")
LIBRARY = _cpp.CppLibrary("actlab_learnable", [_HERE / f"_kernels_{family}.cpp" for family in _FAMILIES],
                          on_load=_register_fakes)
TRITON = _triton.TritonLibrary("actlab_learnable", [f"{__package__}._triton_{family}"
                                                    for family in ("slaf", "spline", "rational", "subnet")])


@_cpp.assume_constant_result
def _ready() -> bool:
    # Under torch.compile this runs once while tracing (building if need be)
    # and its answer is baked into the graph, so the build never is traced.
    return LIBRARY.load()


@_cpp.assume_constant_result
def _triton_ready() -> bool:
    return TRITON.load()


def usable(x: Tensor, *params: Tensor | None) -> bool:
    """Whether the kernels take this call: float32, contiguous x, kernels on and built;
    on the CPU the C++ kernels, on CUDA (or :func:`actlab._triton.on_cpu`) the Triton ones."""
    if not (_cpp.kernels_enabled() and x.dtype == torch.float32 and x.is_contiguous()):
        return False
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        return False  # export in plain torch ops (ONNX has no translation of the custom ops); see _autograd.run
    if _triton.takes(x):
        return _triton.same_device(x, *params) and _triton_ready()
    if not x.is_cpu:
        return False
    for p in params:
        if p is not None and not (p.dtype == torch.float32 and p.is_cpu):
            return False
    return _ready()


def rational_fits(a: Tensor, b: Tensor) -> bool:
    """Whether the kernel holds the coefficients (numerator and denominator) on its stack."""
    return a.shape[1] < _MAX_TERMS and b.shape[1] < _MAX_TERMS and a.shape[1] + b.shape[1] <= _MAX_TERMS


@_cpp.assume_constant_result
def slaf_plan(basis_name: str, n: int) -> tuple[int, tuple[float, ...]] | None:
    """The kernel's (kind, rec) for a basis with n terms, or None where it has no kernel."""
    key = (basis_name, n)
    if key not in _PLANS:
        _PLANS[key] = _plan(BASES.get(basis_name), n)
    return _PLANS[key]


_PLANS: dict[tuple[str, int], tuple[int, tuple[float, ...]] | None] = {}


def _plan(basis, n: int) -> tuple[int, tuple[float, ...]] | None:
    if n > _MAX_TERMS:
        return None
    if isinstance(basis, ThreeTerm):
        rec = [basis.a0]
        for k in range(1, n - 1):
            rec += [basis.alpha(k), basis.gamma(k)]
        return 0, tuple(float(r) for r in rec)
    if isinstance(basis, Fourier):
        return 1, ()
    if isinstance(basis, RBF):
        # The same float32 centres and width as RBF.terms.
        return 2, (2.0 / max(n - 1, 1), *torch.linspace(-1.0, 1.0, n).tolist())
    return None


def _ops(x: Tensor):
    """The operators for ``x``: the Triton twins on CUDA (or forced on the CPU), else the C++ ones."""
    return torch.ops.actlab_triton if _triton.takes(x) else torch.ops.actlab_learnable


def slaf_forward(x: Tensor, coef: Tensor, scale: Tensor | None, w: Tensor | None, dends: Tensor, inv_range: float,
                 plan: tuple[int, tuple[float, ...]]) -> Tensor:
    """slaf with a = coef * scale (per term; None: a = coef), the product taken inside."""
    kind, rec = plan
    return _ops(x).slaf_fwd(x, coef, scale, w, dends, rec, inv_range, kind)


def slaf_backward(g: Tensor, x: Tensor, coef: Tensor, scale: Tensor | None, w: Tensor | None, dends: Tensor,
                  inv_range: float, plan: tuple[int, tuple[float, ...]]) -> tuple[Tensor, Tensor, Tensor | None]:
    """The gradients of x, coef (d/da * scale) and w."""
    kind, rec = plan
    gx, gc, gw = _ops(x).slaf_bwd(g.contiguous(), x, coef, scale, w, dends, rec, inv_range, kind)
    return gx, gc, (gw if w is not None else None)


def piecewise_forward(x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> Tensor:
    return _ops(x).spline_fwd(x, table, inv_h, offset)


def piecewise_backward(g: Tensor, x: Tensor, table: Tensor, inv_h: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    return _ops(x).spline_bwd(g.contiguous(), x, table, inv_h, offset)


def linear_spline_forward(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return _ops(x).linear_spline_fwd(x, values, lo, hi)


def linear_spline_backward(g: Tensor, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return _ops(x).linear_spline_bwd(g.contiguous(), x, values, lo, hi)


def cubic_spline_forward(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
    return _ops(x).cubic_spline_fwd(x, values, lo, hi)


def cubic_spline_backward(g: Tensor, x: Tensor, values: Tensor, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
    return _ops(x).cubic_spline_bwd(g.contiguous(), x, values, lo, hi)


def rational_forward(x: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return _ops(x).rational_fwd(x, a, b)


def rational_backward(g: Tensor, x: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return _ops(x).rational_bwd(g.contiguous(), x, a, b)


def subnet_forward(x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor, act: int) -> Tensor:
    return _ops(x).subnet_fwd(x, w_in, b_in, w_out, b_out, act)


def subnet_backward(g: Tensor, x: Tensor, w_in: Tensor, b_in: Tensor, w_out: Tensor, b_out: Tensor,
                    act: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return _ops(x).subnet_bwd(g.contiguous(), x, w_in, b_in, w_out, b_out, act)
