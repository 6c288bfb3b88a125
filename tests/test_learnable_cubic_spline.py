"""CubicSplineFn (B-spline coefficients in, segment table built inside) against PiecewiseFn on cubic_table."""

from __future__ import annotations

import torch

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.activations.learnable._autograd_spline import CubicSplineFn, PiecewiseFn, cubic_table
from kernel_helpers import require_built


def _table_path(x, values, lo, hi):
    inv_h = (values.shape[1] - 3) / (hi - lo)
    return PiecewiseFn.apply(x, cubic_table(values), inv_h, -lo * inv_h)


def _grads(fn, x, values, lo, hi, g):
    x, values = x.clone().requires_grad_(True), values.clone().requires_grad_(True)
    y = fn(x, values, lo, hi)
    y.backward(g)
    return y.detach(), x.grad, values.grad


def _case(dtype, channels=3, knots=9):
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(5, channels, 40, generator=gen, dtype=dtype)
    x.view(-1)[:4] = torch.tensor([-40.0, -2.0, 2.0, 40.0], dtype=dtype)  # knots and both tails
    values = torch.randn(channels, knots, generator=gen, dtype=dtype)
    lo = -1.0 - torch.rand(channels, generator=gen, dtype=dtype)
    hi = 1.0 + torch.rand(channels, generator=gen, dtype=dtype)
    return x, values, lo, hi, torch.randn(x.shape, generator=gen, dtype=dtype)


def test_cubic_spline_reference_equals_the_table_path_in_float64():
    x, values, lo, hi, g = _case(torch.float64)
    for a, b in zip(_grads(CubicSplineFn.apply, x, values, lo, hi, g), _grads(_table_path, x, values, lo, hi, g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_cubic_spline_gradcheck_and_gradgradcheck_in_float64():
    x, values, lo, hi, _ = _case(torch.float64, channels=2, knots=6)
    x, values = x[:2, :, :5].clone().requires_grad_(True), values.requires_grad_(True)
    fn = lambda x, v: CubicSplineFn.apply(x, v, lo, hi)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, values))
    assert torch.autograd.gradgradcheck(fn, (x, values))


def test_cubic_spline_kernel_matches_the_table_kernel_bit_for_bit_forward():
    require_built(_kernels.LIBRARY)
    for channels, knots in [(3, 9), (1, 4), (16, 150)]:
        x, values, lo, hi, g = _case(torch.float32, channels, knots)
        assert _kernels.usable(x, values, lo, hi)
        got, ref = _grads(CubicSplineFn.apply, x, values, lo, hi, g), _grads(_table_path, x, values, lo, hi, g)
        # the same float operations build the table (no fused multiply-add), then the same kernel body
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
        # The kernel folds the table gradient into the coefficients' in double: closer to float64.
        exact = _grads(CubicSplineFn.apply, *(t.double() for t in (x, values, lo, hi, g)))[2]
        scale = float(exact.abs().max())
        assert (got[2].double() - exact).abs().max() <= 1e-6 * scale + (ref[2].double() - exact).abs().max()
        with _cpp.kernels_disabled():
            plain = _grads(CubicSplineFn.apply, x, values, lo, hi, g)
        for a, b in zip(got, plain):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(b.abs().max())))
