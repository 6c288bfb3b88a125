"""Fitting compressed forms: error bounds from closed forms, tails, tolerance search."""

import math

import numpy as np
import pytest
import torch
from scipy.interpolate import CubicSpline
from torch import nn

from actlab.compress.fit import fit, fit_to_tolerance, input_range, pwl_values
from actlab.compress.target import Target, per_channel_width
from actlab.errors import ActlabError

LO, HI = torch.tensor([-4.0]), torch.tensor([4.0])


class Fn(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class ScaledTanh(nn.Module):
    """Per-channel parameters along dim 1, as learnable families keep them."""

    def __init__(self, scales):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scales))

    def forward(self, x):
        return self.scale.view(1, -1, *([1] * (x.ndim - 2))) * torch.tanh(x)


def target(f):
    return Target(Fn(f), 1)


def test_pwl_of_tanh_with_64_knots_is_within_the_interpolation_bound():
    h = 8.0 / 63
    bound = h**2 / 8 * 4 / (3 * math.sqrt(3))  # max |tanh''| = 4 / (3 sqrt 3)
    result = fit(target(torch.tanh), LO, HI, "pwl", 64)
    assert result.max_error <= bound + 1e-6
    assert result.max_error > 0.5 * bound  # the grid does see the segment midpoints


def test_pwl_matches_numpy_interp_inside_and_extends_the_edge_segments_outside():
    result = fit(target(torch.sin), LO, HI, "pwl", 17)
    knots = np.linspace(-4, 4, 17)
    x = np.linspace(-7, 7, 301)
    inside = np.abs(x) <= 4
    y = result.module(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(y[inside], np.interp(x[inside], knots, np.sin(knots)), atol=1e-6)
    right = np.sin(knots[-1]) + (x - 4) * (np.sin(knots[-1]) - np.sin(knots[-2])) / (knots[1] - knots[0])
    left = np.sin(knots[0]) + (x + 4) * (np.sin(knots[1]) - np.sin(knots[0])) / (knots[1] - knots[0])
    np.testing.assert_allclose(y[x > 4], right[x > 4], atol=1e-5)
    np.testing.assert_allclose(y[x < -4], left[x < -4], atol=1e-5)


def test_pwl_of_relu_is_exact_in_the_tails():
    result = fit(target(torch.relu), torch.tensor([-2.0]), torch.tensor([3.0]), "pwl", 8)
    x = torch.tensor([-100.0, -2.5, 3.5, 100.0])
    torch.testing.assert_close(result.module(x), torch.relu(x))


def test_least_squares_pwl_lowers_the_error_weighted_by_the_sample():
    sample = torch.randn(1, 5000)
    interp = fit(target(torch.tanh), LO, HI, "pwl", 8, sample)
    lsq = fit(target(torch.tanh), LO, HI, "pwl", 8, sample, least_squares=True)
    assert lsq.weighted_error < 0.8 * interp.weighted_error


def test_least_squares_pwl_reproduces_a_piecewise_linear_target_on_its_knots():
    values = torch.tensor([[0.0, 1.0, -1.0, 2.0, 0.5]], dtype=torch.float64)
    f = lambda x: torch.from_numpy(np.interp(x.numpy(), np.linspace(-4, 4, 5), values[0].numpy()))  # noqa: E731
    fitted = pwl_values(f, LO.double(), HI.double(), 5, torch.randn(1, 500), least_squares=True)
    torch.testing.assert_close(fitted, values)


def test_cubic_spline_agrees_with_scipy_and_is_accurate_for_a_smooth_function():
    result = fit(target(torch.sin), LO, HI, "cubic", 33)
    knots = np.linspace(-4, 4, 33)
    x = np.random.default_rng(0).uniform(-4, 4, 500)
    y = result.module(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(y, CubicSpline(knots, np.sin(knots))(x), atol=2e-6)
    # Hall & Meyer: 5/384 h^4 max|f''''| = 5.1e-5 for clamped ends; not-a-knot ends are a little worse
    assert result.max_error < 1e-4


def test_cubic_tails_are_tangent_lines_at_the_range_ends():
    result = fit(target(torch.sin), LO, HI, "cubic", 33)
    spline = CubicSpline(np.linspace(-4, 4, 33), np.sin(np.linspace(-4, 4, 33)))
    x = torch.tensor([5.0, 6.0, -5.0, -6.0])
    expected = [spline(4) + spline(4, 1) * 1, spline(4) + spline(4, 1) * 2,
                spline(-4) - spline(-4, 1) * 1, spline(-4) - spline(-4, 1) * 2]
    np.testing.assert_allclose(result.module(x).numpy(), expected, atol=1e-5)


def test_poly_recovers_a_cubic_and_approximates_exp_near_minimax():
    exact = fit(target(lambda x: x**3 - 2 * x + 1), torch.tensor([-1.0]), torch.tensor([2.0]), "poly", 3)
    assert exact.max_error < 1e-5
    smooth = fit(target(torch.exp), torch.tensor([-1.0]), torch.tensor([1.0]), "poly", 6)
    assert smooth.max_error < 2e-5  # minimax error ~ e / (2^6 7!) = 8e-6


def test_poly_tails_are_tangent_lines():
    result = fit(target(lambda x: x**2), torch.tensor([-1.0]), torch.tensor([1.0]), "poly", 2)
    x = torch.tensor([2.0, 3.0, -3.0])
    torch.testing.assert_close(result.module(x), torch.tensor([3.0, 5.0, 5.0]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method,tolerance", [("pwl", 1e-3), ("cubic", 1e-5), ("poly", 1e-2)])
def test_tolerance_gives_a_size_that_passes_while_one_less_fails(method, tolerance):
    result = fit_to_tolerance(target(torch.tanh), LO, HI, method, tolerance)
    assert result.max_error <= tolerance
    assert fit(target(torch.tanh), LO, HI, method, result.size - 1).max_error > tolerance


def test_unreachable_tolerance_raises():
    with pytest.raises(ActlabError, match="cannot reach"):
        fit_to_tolerance(target(torch.tanh), LO, HI, "poly", 1e-9)


def test_per_channel_targets_get_one_table_per_channel():
    module = ScaledTanh([1.0, -2.0, 3.0])
    assert per_channel_width(module, 3, 4) == 3
    assert per_channel_width(nn.Tanh(), 3, 4) == 1
    lo, hi = torch.tensor([-4.0, -2.0, -1.0]), torch.tensor([4.0, 2.0, 1.0])
    result = fit(Target(module, 3, 4), lo, hi, "pwl", 64)
    assert result.module.values.shape == (3, 64)
    x = torch.rand(2, 3, 5, 5) * 2 - 1  # inside every channel's range
    torch.testing.assert_close(result.module(x), module(x), atol=5e-3, rtol=0)
    assert result.max_error <= 3 * (8 / 63) ** 2 / 8 * 4 / (3 * math.sqrt(3)) + 1e-6


def test_input_range_is_the_percentiles_per_row():
    sample = torch.randn(2, 10_000)
    lo, hi = input_range(sample, (1.0, 99.0))
    expected = np.percentile(sample.double().numpy(), [1.0, 99.0], axis=1)
    np.testing.assert_allclose(lo.numpy(), expected[0], rtol=1e-6)
    np.testing.assert_allclose(hi.numpy(), expected[1], rtol=1e-6)


@pytest.mark.parametrize("method,size,message", [("pwl", 1, "knots"), ("cubic", 5000, "knots"),
                                                 ("poly", 0, "degree"), ("lut", 4, "Valid names: cubic")])
def test_bad_sizes_and_methods_raise(method, size, message):
    with pytest.raises(ActlabError, match=message):
        fit(target(torch.tanh), LO, HI, method, size)
