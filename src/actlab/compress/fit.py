"""Fitting compressed forms to an activation: pure functions on tensors.

A target is any callable mapping a (C, n) grid to (C, n) values, row c through
channel c's function (see :class:`actlab.compress.target.Target`). Ranges come
from percentiles of the recorded inputs (default 0.1 and 99.9: the range
covers 99.8 % of what the layer saw, and a few outliers do not stretch the
grid). Errors:

- ``max_error``: the largest |f - g| over the range, on a grid of at least
  2049 points and 8 points per table segment (so every segment midpoint, where
  interpolation errors peak, is included), the worst channel;
- ``weighted_error``: the root-mean-square |f - g| over the recorded inputs
  themselves, tails included, i.e. weighted by the observed distribution.

A tolerance always refers to ``max_error``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from actlab.compress.modules import CubicActivation, PolyActivation, PWLActivation
from actlab.compress.spec import check_method, check_size, size_range
from actlab.errors import ActlabError

DEFAULT_PERCENTILES = (0.1, 99.9)


@dataclass(frozen=True)
class Fit:
    """A fitted compressed activation and how well it matches its target."""

    module: nn.Module
    method: str
    size: int  # knots for pwl/cubic, degree for poly
    lo: Tensor
    hi: Tensor
    max_error: float
    weighted_error: float | None


def input_range(sample: Tensor, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[Tensor, Tensor]:
    """Per-row (lo, hi) percentiles of a (C, n) sample; a degenerate range is widened."""
    p_lo, p_hi = percentiles
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise ActlabError(f"percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}")
    if sample.numel() == 0:
        raise ActlabError("cannot choose a range from an empty sample")
    q = torch.tensor([p_lo / 100.0, p_hi / 100.0], dtype=torch.float64)
    lo, hi = torch.quantile(sample.double(), q, dim=1)
    pad = 1e-3 * (1.0 + torch.maximum(lo.abs(), hi.abs()))  # an input that never varies
    narrow = (hi - lo) < pad
    return torch.where(narrow, lo - pad, lo), torch.where(narrow, hi + pad, hi)


def _grid(lo: Tensor, hi: Tensor, n: int) -> Tensor:
    steps = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return lo[:, None] + (hi - lo)[:, None] * steps


def pwl_values(target, lo: Tensor, hi: Tensor, knots: int, sample: Tensor | None = None,
               least_squares: bool = False) -> Tensor:
    """Table values (C, K): the function at the knots, or a least-squares fit.

    The least-squares fit minimises sum w (f - g)^2 over a uniform grid (weight
    1e-2 per point, so every segment is determined) plus the recorded inputs in
    range (total weight 1, so the observed distribution dominates). The normal
    equations are tridiagonal in the hat-function basis.
    """
    if not least_squares:
        return target(_grid(lo, hi, knots))
    channels = lo.numel()
    grid = _grid(lo, hi, 8 * (knots - 1) + 1)
    points, weights = [grid], [torch.full_like(grid, 1e-2 / grid.shape[1])]
    if sample is not None:
        s = sample.double().expand(channels, -1)
        inside = (s >= lo[:, None]) & (s <= hi[:, None])
        points.append(torch.where(inside, s, grid[:, :1]))
        weights.append(inside.double() / s.shape[1])
    xs, w = torch.cat(points, 1), torch.cat(weights, 1)
    f = target(xs)
    u = (xs - lo[:, None]) * ((knots - 1) / (hi - lo))[:, None]
    i = torch.clamp(torch.floor(u), 0, knots - 2)
    t, i = u - i, i.long()
    gram = torch.zeros(channels, knots, knots, dtype=torch.float64)
    rhs = torch.zeros(channels, knots, dtype=torch.float64)
    rows = torch.arange(channels)[:, None].expand_as(i)
    for da, wa in ((0, 1 - t), (1, t)):
        rhs.index_put_((rows, i + da), w * wa * f, accumulate=True)
        for db, wb in ((0, 1 - t), (1, t)):
            gram.index_put_((rows, i + da, i + db), w * wa * wb, accumulate=True)
    return torch.linalg.solve(gram, rhs)


def cubic_coefficients(target, lo: Tensor, hi: Tensor, knots: int) -> Tensor:
    """(C, K-1, 4) coefficients of the not-a-knot cubic spline through the knots.

    On the normalised grid u = 0..K-1 every channel shares its abscissae, so
    one scipy call fits them all; not-a-knot ends keep the O(h^4) accuracy up
    to the range ends (natural ends would force f'' = 0 there).
    """
    y = target(_grid(lo, hi, knots)).numpy()
    from scipy.interpolate import CubicSpline  # here: scipy.interpolate costs ~0.6 s at import

    spline = CubicSpline(np.arange(knots, dtype=np.float64), y, axis=1)
    c = torch.from_numpy(spline.c)  # (4, K-1, C): coefficients of t^3, t^2, t, 1
    return c.flip(0).permute(2, 1, 0).contiguous()


def poly_coefficients(target, lo: Tensor, hi: Tensor, degree: int, sample: Tensor | None = None,
                      least_squares: bool = False) -> Tensor:
    """(C, d+1) coefficients in u = (2x - lo - hi)/(hi - lo) of a least-squares polynomial.

    Fitted on Chebyshev points, which makes it close to the minimax
    polynomial; with ``least_squares`` and a sample the recorded inputs in
    range are added with total weight 1 against 1e-2 for the Chebyshev points.
    """
    m = max(64, 8 * (degree + 1))
    u = torch.cos(torch.pi * (torch.arange(m, dtype=torch.float64) + 0.5) / m).expand(lo.numel(), -1)
    w = torch.full_like(u, 1.0 if sample is None or not least_squares else 1e-2 / m)
    if sample is not None and least_squares:
        s = sample.double().expand(lo.numel(), -1)
        us = (2 * s - (lo + hi)[:, None]) / (hi - lo)[:, None]
        inside = us.abs() <= 1
        u = torch.cat([u, torch.where(inside, us, 0.0)], 1)
        w = torch.cat([w, inside.double() / s.shape[1]], 1)
    f = target(((u + 1) * (hi - lo)[:, None] / 2 + lo[:, None]))
    basis = torch.stack([u**k for k in range(degree + 1)], -1)  # (C, m, d+1)
    sw = w.sqrt()[..., None]
    return torch.linalg.lstsq(basis * sw, (f[..., None] * sw)).solution[..., 0]


def make_module(target, lo: Tensor, hi: Tensor, method: str, size: int, sample: Tensor | None = None,
                least_squares: bool = False, fast: str = "auto", tails: Tensor | None = None) -> nn.Module:
    """The compressed module of ``method`` with ``size`` knots (or degree) on [lo, hi].

    ``tails`` (C, 2), the slopes to continue with below lo and above hi (NaN:
    the fit's own end slope; see :mod:`actlab.compress.tails`). A table or
    cubic spline then spends its first and last of ``size`` knots on one
    tail segment each, just outside [lo, hi], so the kernels need no change.
    """
    check_method(method)
    check_size(method, size)
    if method == "poly":
        return PolyActivation(poly_coefficients(target, lo, hi, size, sample, least_squares), lo, hi, tails=tails)
    if tails is None or size < 4:
        if method == "cubic":
            return CubicActivation(cubic_coefficients(target, lo, hi, size), lo, hi)
        return PWLActivation(pwl_values(target, lo, hi, size, sample, least_squares), lo, hi, fast=fast)
    h = (hi - lo) / (size - 3)
    if method == "cubic":
        coef = cubic_coefficients(target, lo, hi, size - 2)  # (C, K-3, 4) in t, one unit of t = h
        end = coef[:, -1]
        s_lo = torch.where(tails[:, 0].isnan(), coef[:, 0, 1] / h, tails[:, 0])
        s_hi = torch.where(tails[:, 1].isnan(), (end[:, 1] + 2 * end[:, 2] + 3 * end[:, 3]) / h, tails[:, 1])
        zero = torch.zeros_like(h)
        left = torch.stack([coef[:, 0, 0] - s_lo * h, s_lo * h, zero, zero], 1)
        right = torch.stack([end.sum(1), s_hi * h, zero, zero], 1)
        coef = torch.cat([left[:, None], coef, right[:, None]], 1)
        return CubicActivation(coef, lo - h, hi + h)
    values = pwl_values(target, lo, hi, size - 2, sample, least_squares)
    s_lo = torch.where(tails[:, 0].isnan(), (values[:, 1] - values[:, 0]) / h, tails[:, 0])
    s_hi = torch.where(tails[:, 1].isnan(), (values[:, -1] - values[:, -2]) / h, tails[:, 1])
    values = torch.cat([(values[:, 0] - s_lo * h)[:, None], values, (values[:, -1] + s_hi * h)[:, None]], 1)
    return PWLActivation(values, lo - h, hi + h, fast=fast)


def errors(target, module: nn.Module, lo: Tensor, hi: Tensor, size: int,
           sample: Tensor | None = None) -> tuple[float, float | None]:
    """(max error over the range, RMS error over the sample) of ``module`` against ``target``."""
    xs = _grid(lo, hi, min(max(2049, 8 * (size - 1) + 1), 32769))
    max_err = float((_rows(module, xs) - target(xs)).abs().max())
    if sample is None:
        return max_err, None
    s = sample.double().expand(lo.numel(), -1)
    return max_err, float((_rows(module, s) - target(s)).square().mean().sqrt())


def _rows(module: nn.Module, xs: Tensor) -> Tensor:
    """A compressed module evaluated row-wise like a target, in float64."""
    x = xs.transpose(0, 1).float()
    with torch.no_grad():
        y = module(x.reshape(-1)).reshape(x.shape) if module.channels == 1 else module(x)
    return y.transpose(0, 1).double()


def fit(target, lo: Tensor, hi: Tensor, method: str, size: int, sample: Tensor | None = None,
        least_squares: bool = False, fast: str = "auto", tails: Tensor | None = None) -> Fit:
    """Fit ``method`` with ``size`` knots (pwl, cubic) or degree (poly) and measure its errors."""
    module = make_module(target, lo, hi, method, size, sample, least_squares, fast, tails)
    max_err, weighted = errors(target, module, lo, hi, size, sample)
    return Fit(module, method, size, lo, hi, max_err, weighted)


def fit_to_tolerance(target, lo: Tensor, hi: Tensor, method: str, tolerance: float,
                     sample: Tensor | None = None, least_squares: bool = False, fast: str = "auto",
                     tails: Tensor | None = None) -> Fit:
    """The fit with the smallest size whose ``max_error`` is at most ``tolerance``.

    Sizes double from the smallest (2 knots, degree 1) until one passes, then
    bisection between the last failure and the first pass returns a size that
    passes while the size one below fails. Errors are not exactly monotone in K
    (the knots move as K changes), so this is the smallest size in the usual,
    monotone case.
    """
    check_method(method)
    if not tolerance > 0:
        raise ActlabError(f"tolerance must be positive, got {tolerance}")
    smallest, largest = size_range(method)
    tried: dict[int, Fit] = {}

    def attempt(size: int) -> bool:
        tried[size] = fit(target, lo, hi, method, size, sample, least_squares, fast, tails)
        return tried[size].max_error <= tolerance

    if attempt(smallest):
        return tried[smallest]
    failing, passing = smallest, None
    while passing is None:
        size = min(2 * failing, largest)
        if attempt(size):
            passing = size
        elif size == largest:
            raise ActlabError(
                f"{method} cannot reach max error {tolerance:g} with size <= {largest} "
                f"(best {tried[largest].max_error:.3g}); raise the tolerance"
            )
        else:
            failing = size
    while passing - failing > 1:
        mid = (failing + passing) // 2
        if attempt(mid):
            passing = mid
        else:
            failing = mid
    return tried[passing]
