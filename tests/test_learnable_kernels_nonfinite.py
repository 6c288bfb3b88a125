"""The fused kernels on NaN, +-inf and huge inputs, and rbf on both of its kernel paths.

Non-finite values must come out exactly where and as the PyTorch reference puts
them (a NaN stays NaN, an infinite input that the tails carry gives the
reference's inf or NaN), and the finite gradients must still match. Fourier
skips the huge finite inputs: there the float32 reference rounds the phase
pi k z / 2 to nothing (see test_kernels_are_accurate_far_out_against_float64). slaf's rbf
takes two exps per element by ratios of neighbouring terms up to 10 terms and
one exp per term beyond; both are held to the reference.
"""

from __future__ import annotations

import pytest
import torch

from actlab import _cpp
from actlab.activations import Site, make_activation
from actlab.activations.learnable import _kernels
from kernel_helpers import require_built

NONFINITE = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 0.0, 3.5, -3.5]
SPECS = [
    "slaf(degree=4)", "slaf(degree=8,basis=chebyshev)", "slaf(degree=4,basis=fourier)",
    "slaf(degree=4,basis=rbf)", "slaf(degree=9,basis=rbf)", "slaf(degree=11,basis=rbf)",
    "slaf(degree=3,basis=rbf,hybrid=true)", "spline(knots=32)", "spline(knots=9,order=3)",
    "rational",
]


@pytest.fixture(scope="module", autouse=True)
def _built():
    require_built(_kernels.LIBRARY)


def _run(spec: str, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    torch.manual_seed(0)
    module = make_activation(f"{spec[:-1]},sharing=channel)" if "(" in spec else f"{spec}(sharing=channel)",
                             Site(3, "conv"))
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape))
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.backward(g)
    return [y.detach(), x.grad] + [p.grad for p in module.parameters()]


def _same(got: list[torch.Tensor], ref: list[torch.Tensor]) -> None:
    for a, b in zip(got, ref, strict=True):
        assert torch.equal(torch.isnan(a), torch.isnan(b))
        assert torch.equal(a[torch.isinf(b)], b[torch.isinf(b)]) and torch.equal(torch.isinf(a), torch.isinf(b))
        fin = torch.isfinite(b)
        scale = float(b[fin].abs().max()) if fin.any() else 1.0
        torch.testing.assert_close(a[fin], b[fin], rtol=2e-5, atol=2e-5 * max(scale, 1e-3))


@pytest.mark.parametrize("spec", SPECS)
def test_nan_inf_and_huge_inputs_come_out_like_the_reference(spec):
    values = [v for v in NONFINITE if "fourier" not in spec or abs(v) != 1e30]
    x = 2.0 * torch.randn(4, 3, 7, 9)
    x.view(-1)[: len(values)] = torch.tensor(values)
    g = torch.randn(x.shape)
    g.view(-1)[: len(values)] = 0.0  # parameter gradients stay finite, so they are compared too
    got = _run(spec, x, g)
    with _cpp.kernels_disabled():
        ref = _run(spec, x, g)
    _same(got, ref)


@pytest.mark.parametrize("degree", [1, 2, 4, 9, 11])
def test_rbf_kernels_match_the_reference_across_the_grid_and_the_tails(degree):
    x = torch.linspace(-5.0, 5.0, 6000).reshape(2, 3, 1000)  # range 3: zc spans [-1, 1] and the tails
    g = torch.randn(x.shape)
    got = _run(f"slaf(degree={degree},basis=rbf)", x, g)
    with _cpp.kernels_disabled():
        ref = _run(f"slaf(degree={degree},basis=rbf)", x, g)
    _same(got, ref)


@pytest.mark.parametrize("spec", ["rational", "rational(num=3,den=5)", "rational(num=7,den=2)"])
def test_rational_gradients_at_huge_finite_inputs_match_the_reference(spec):
    # float32 x^5 overflows beyond 4.6e7: the kernel's backward scales the powers there as the reference does
    huge = [s * 10.0 ** e for e in (5, 6, 7, 8, 9, 12, 20, 30, 38) for s in (1.0, -1.0)]
    x = 2.0 * torch.randn(2, 3, 40)
    x.view(-1)[::7][: len(huge)] = torch.tensor(huge)  # mixed with moderate inputs in one SIMD vector
    g = torch.randn(x.shape)
    got = _run(spec, x, g)
    with _cpp.kernels_disabled():
        ref = _run(spec, x, g)
    _same(got, ref)
