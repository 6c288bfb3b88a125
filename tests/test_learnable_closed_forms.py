"""Learnable families against closed forms and numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actlab.activations import Site, make_activation
from actlab.activations.learnable import BASES

XS = np.linspace(-3, 3, 513)


def test_slaf_chebyshev_degree_8_fit_to_tanh_equals_numpys_least_squares():
    ref = np.polynomial.chebyshev.Chebyshev.fit(XS, np.tanh(XS), 8, domain=[-3, 3])
    module = make_activation("slaf(degree=8,basis=chebyshev,init=tanh)")
    got = module.curve(torch.tensor(XS, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, ref(XS), atol=2e-6)
    assert module.fit_error()["max_abs"] == pytest.approx(np.abs(ref(XS) - np.tanh(XS)).max(), rel=1e-5)
    assert module.fit_error()["max_abs"] < 0.03


@pytest.mark.parametrize("basis", ["monomial", "legendre", "hermite"])
def test_slaf_polynomial_bases_span_the_same_least_squares_fit(basis):
    ref = np.polynomial.polynomial.Polynomial.fit(XS, np.tanh(XS), 6)
    module = make_activation(f"slaf(degree=6,basis={basis},init=tanh)")
    got = module.curve(torch.tensor(XS, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(got, ref(XS), atol=1e-5)


def test_slaf_continues_linearly_with_the_end_slope_beyond_its_range():
    module = make_activation("slaf(degree=3,range=2,init=tanh)")
    a = module.coef.detach().double()[0] * module.scale.double()  # coefficients of z^k, z = x / 2
    p = np.polynomial.Polynomial(a.numpy())
    xs = np.array([-1e4, -5.0, 3.0, 1e4])
    zc = np.clip(xs / 2, -1, 1)
    expected = p(zc) + p.deriv()(zc) * (xs / 2 - zc)
    got = module(torch.tensor(xs).reshape(-1, 1).float()).detach().double().reshape(-1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_slaf_fourier_is_periodic_with_period_four_ranges():
    module = make_activation("slaf(degree=3,basis=fourier,range=2)")
    x = torch.linspace(-2, 2, 9).reshape(-1, 1)
    torch.testing.assert_close(module(x + 8.0), module(x), atol=1e-5, rtol=0)


def test_slaf_hybrid_fits_relu_exactly_with_its_relu_term():
    module = make_activation("slaf(degree=3,hybrid=true)")
    assert module.fit_error()["max_abs"] < 1e-5
    assert module.scalars()["relu_weight"] == pytest.approx(1.0, abs=1e-5)


def test_slaf_standardize_uses_batch_statistics_in_training_and_running_ones_in_eval():
    module = make_activation("slaf(degree=2,standardize=true,init=identity)")
    x = (3 + 0.5 * torch.randn(4096, 1)) / 3  # z ~ N(1, 1/6^2)
    module.train()
    module(x)
    z = x / 3  # the clamped, scaled input of the basis
    zc = z.clamp(-1, 1)
    phi2 = zc**2 + 2 * zc * (z - zc)
    assert module.running_mean[0, 2] == pytest.approx(0.1 * float(phi2.mean()), rel=1e-4)
    module.eval()
    y = module(x)
    torch.testing.assert_close(module(x), y)


def test_spline_64_knots_fits_tanh_within_the_interpolation_bound():
    module = make_activation("spline(knots=64,init=tanh)")
    h = 6 / 63
    bound = h**2 / 8 * 4 / (3 * np.sqrt(3))  # max |tanh''| = 4 / (3 sqrt 3)
    assert module.fit_error()["max_abs"] < bound


def test_spline_with_a_knot_at_zero_is_exactly_relu_and_extrapolates_linearly():
    module = make_activation("spline(knots=33,range=4)")
    x = torch.tensor([-1e4, -7.0, -0.3, 0.0, 0.6, 3.9, 12.0, 1e4]).reshape(-1, 1)
    torch.testing.assert_close(module(x), torch.relu(x), atol=1e-5, rtol=1e-6)


def test_spline_total_variation_of_relu_is_one_jump_of_slope():
    module = make_activation("spline(knots=33,range=4,tv=0.5)")
    assert module.regularization().item() == pytest.approx(0.5, abs=1e-5)
    assert float(make_activation("spline").regularization()) == 0.0


def test_cubic_spline_fits_a_cubic_exactly_and_continues_with_its_tangent():
    module = make_activation("spline(knots=12,order=3,range=2,init=tanh)")
    with torch.no_grad():  # B-spline coefficients of f(x) = x: the centres themselves
        h = 4 / 9
        module.values.copy_(-2 + h * (torch.arange(12.0) - 1))
    x = torch.tensor([-50.0, -2.0, -0.7, 0.0, 1.3, 2.0, 50.0]).reshape(-1, 1)
    torch.testing.assert_close(module(x), x, atol=1e-5, rtol=1e-5)


def test_spline_calibration_moves_the_grid_and_keeps_the_function():
    module = make_activation("spline(knots=64,range=3,init=tanh,sharing=channel)", Site(2, "conv"))
    data = torch.stack([2 + 0.5 * torch.randn(20000), -1 + 0.2 * torch.randn(20000)], 1)
    before = module.curve(torch.linspace(0.8, 3.0, 50))
    with module.calibrating():
        module(data)
    torch.testing.assert_close(module.lo, torch.tensor([0.5, -1.6]), atol=0.05, rtol=0)
    torch.testing.assert_close(module.hi, torch.tensor([3.5, -0.4]), atol=0.05, rtol=0)
    after = module.curve(torch.linspace(0.8, 3.0, 50))
    torch.testing.assert_close(after[0], before[0], atol=2e-3, rtol=0)


def test_spline_auto_calibration_happens_after_the_first_training_batches():
    module = make_activation("spline(knots=16,calibrate=true,calibrate_batches=3)")
    for _ in range(3):
        assert float(module.hi) == 3.0
        module(1 + 0.1 * torch.randn(500, 1))
    assert float(module.hi) == pytest.approx(1.3, abs=0.03)
    module(torch.randn(500, 1) * 10)
    assert float(module.hi) == pytest.approx(1.3, abs=0.03)  # calibrates once


def test_rational_is_the_safe_pade_formula():
    module = make_activation("rational(num=3,den=2)")
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    module = module.double()
    with torch.no_grad():
        module.numerator.copy_(a), module.denominator.copy_(b)
    x = np.linspace(-5, 5, 41)
    expected = np.polyval(a.numpy()[::-1], x) / (1 + np.abs(b[0].item() * x) + np.abs(b[1].item()) * x**2)
    got = module(torch.tensor(x).reshape(-1, 1)).detach().reshape(-1).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("init, tol", [("relu", 0.035), ("tanh", 1e-3)])
def test_rational_5_4_fits_within_the_stated_tolerance(init, tol):
    assert make_activation(f"rational(init={init})").fit_error()["max_abs"] < tol


def test_bases_registry_lists_the_six_bases():
    assert BASES.names() == ["chebyshev", "fourier", "hermite", "legendre", "monomial", "rbf"]


@pytest.mark.parametrize("basis", BASES.names())
def test_every_basis_is_scaled_to_unit_peak_on_its_range(basis):
    b = BASES.get(basis)
    z = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    for (phi, _), s in zip(b.terms(z, b.size(5), deriv=False), b.scale(b.size(5))):
        assert float((torch.as_tensor(phi) * s).abs().max()) == pytest.approx(1.0)
