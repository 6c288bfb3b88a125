"""LinearSplineFn (knot values in, slopes built inside) against the general PiecewiseFn on a table."""

from __future__ import annotations

import torch

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.activations.learnable._autograd_spline import LinearSplineFn, PiecewiseFn
from kernel_helpers import require_built


def _table_path(x, values, lo, hi):
    inv_h = (values.shape[1] - 1) / (hi - lo)
    table = torch.stack([values[:, :-1], values[:, 1:] - values[:, :-1]], -1)
    return PiecewiseFn.apply(x, table, inv_h, -lo * inv_h)


def _grads(fn, x, values, lo, hi, g):
    x, values = x.clone().requires_grad_(True), values.clone().requires_grad_(True)
    y = fn(x, values, lo, hi)
    y.backward(g)
    return y.detach(), x.grad, values.grad


def _case(dtype):
    gen = torch.Generator().manual_seed(0)
    x = 3.0 * torch.randn(5, 3, 7, generator=gen, dtype=dtype)
    x.view(-1)[:4] = torch.tensor([-40.0, -2.0, 2.0, 40.0], dtype=dtype)  # knots and both tails
    values = torch.randn(3, 9, generator=gen, dtype=dtype)
    lo, hi = torch.tensor([-2.0, -1.0, -3.5], dtype=dtype), torch.tensor([2.0, 3.0, 0.5], dtype=dtype)
    return x, values, lo, hi, torch.randn(x.shape, generator=gen, dtype=dtype)


def test_linear_spline_reference_equals_the_table_path_in_float64():
    x, values, lo, hi, g = _case(torch.float64)
    for a, b in zip(_grads(LinearSplineFn.apply, x, values, lo, hi, g), _grads(_table_path, x, values, lo, hi, g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_linear_spline_gradcheck_in_float64():
    x, values, lo, hi, _ = _case(torch.float64)
    assert torch.autograd.gradcheck(lambda x, v: LinearSplineFn.apply(x, v, lo, hi),
                                    (x.requires_grad_(True), values.requires_grad_(True)))


def test_linear_spline_kernel_matches_the_table_kernel_bit_for_bit_forward():
    require_built(_kernels.LIBRARY)
    x, values, lo, hi, g = _case(torch.float32)
    assert _kernels.usable(x, values, lo, hi)
    got, ref = _grads(LinearSplineFn.apply, x, values, lo, hi, g), _grads(_table_path, x, values, lo, hi, g)
    assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])  # same table, grid and kernel body
    # The kernel folds the table gradient in double; the table path rounds it to float first.
    torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-5)
    with _cpp.kernels_disabled():
        plain = _grads(LinearSplineFn.apply, x, values, lo, hi, g)
    for a, b in zip(got, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
