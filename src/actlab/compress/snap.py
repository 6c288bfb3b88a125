"""Symbolic snapping: the closest closed form ``a g(b x + c) + d`` to an activation.

``g`` runs over a modest candidate set of the search grammar: every unary
operator but the constants, compositions ``outer(inner(x))`` of a subset of
smooth and piecewise-linear operators, and gated forms ``mul(x, g(x))`` /
``add(x, g(x))``. For each candidate, a and d enter linearly, so they are
solved exactly by weighted least squares for any (b, c) (variable
projection) and only (b, c) go to ``scipy.optimize.least_squares``, from a
the best points of a coarse (b, c) grid (every candidate is scored on the
grid first; only the best ``REFINE`` of each size are refined, so that a simple
exact form is not crowded out by composites that fit the coarse grid
better). The error is weighted by the observed input distribution when a
sample is given (a histogram over the fitting grid), else uniform on the range.

Exact ties are common (2 sigmoid(2z) - 1 = tanh(z)), so among candidates
within 0.1 % of the best error (plus the float32 noise of the target, 1e-6
of its scale) the one with fewest operators, then the earliest in the
candidate list, wins.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from actlab.activations import ops
from actlab.activations.expr import compile_expression
from actlab.compress.target import Target, per_channel_width
from actlab.spec import parse

COMPOSABLE = ("tanh", "sigmoid", "relu", "exp", "square", "abs", "softplus", "erf", "arctan", "swish", "elu")
GATES = ("sigmoid", "tanh", "erf", "arctan", "softplus", "relu")
# coarse (b, c) grid every candidate is scored on in one vectorised call
B_GRID = (-4.0, -2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0, 4.0)
C_GRID = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
REFINE = 8  # candidates of each size (operator count) refined by least squares after the grid
MAX_EVALS = 60  # per start; fits from a good grid point converge within a few dozen


def candidate_expressions(composable: tuple[str, ...] = COMPOSABLE, gates: tuple[str, ...] = GATES) -> list[str]:
    """The default candidate set, simplest first (about 140 expressions)."""
    unary = [f"{g}(x)" for g in ops.UNARY if g not in ("zero", "one")]
    composed = [f"{o}({i}(x))" for o in composable for i in composable if o != i]
    gated = [f"{op}(x,{g}(x))" for op in ("mul", "add") for g in gates]
    return unary + gated + composed


def _size(text: str) -> int:
    return text.count("(")


class SnappedActivation(nn.Module):
    """``a g(b x + c) + d`` with g an expression of the grammar; a..d scalars or per channel."""

    def __init__(self, expression: str, a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> None:
        super().__init__()
        self.expression = expression
        self.fn = compile_expression(parse(expression))
        for name, value in zip("abcd", (a, b, c, d)):
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float32).reshape(-1).clone())

    def _view(self, t: Tensor, x: Tensor) -> Tensor:
        if t.numel() == 1:
            return t.reshape(()).to(x.dtype)
        return t.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: Tensor) -> Tensor:
        a, b, c, d = (self._view(t, x) for t in (self.a, self.b, self.c, self.d))
        return a * self.fn(b * x + c) + d

    def curve(self, xs: Tensor) -> Tensor:
        xs = xs.reshape(-1).to(self.a.dtype)
        if self.a.numel() == 1:
            return self(xs)
        return self(xs[:, None].expand(-1, self.a.numel())).transpose(0, 1)

    def formula(self) -> str:
        """The closed form with its constants (of channel 0 when per channel)."""
        a, b, c, d = (float(t[0]) for t in (self.a, self.b, self.c, self.d))
        inner = re.sub(r"\bx\b", f"({b:.4g}*x{c:+.4g})", self.expression)  # x alone, not the x of exp
        return f"{a:.4g}*{inner}{d:+.4g}"

    def extra_repr(self) -> str:
        return self.formula()


@dataclass(frozen=True)
class Snap:
    """The best closed form found and its errors (worst channel; RMS under the weights)."""

    module: SnappedActivation
    expression: str
    max_error: float
    weighted_error: float


def _weights(xs: np.ndarray, sample: Tensor | None) -> np.ndarray:
    if sample is None:
        return np.full_like(xs, 1.0 / xs.size)
    edges = np.concatenate([[-np.inf], (xs[1:] + xs[:-1]) / 2, [np.inf]])
    counts = np.histogram(sample.double().reshape(-1).numpy(), bins=edges)[0].astype(np.float64)
    counts += 1e-3 * counts.sum() / xs.size  # keep every point in play, so the fit holds over the range
    return counts / counts.sum()


def _regress(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares y ~ a z + d in closed form, for every row of z (G, n)
    against every row of y (C, n); returns the RMS errors, a and d, each (G, C)."""
    finite = np.isfinite(z).all(1)
    z = np.where(finite[:, None], z, 0.0)
    z_mean, y_mean = z @ w, y @ w
    zc, yc = z - z_mean[:, None], y - y_mean[:, None]
    var = (zc**2) @ w
    a = (zc * w) @ yc.T / np.maximum(var, 1e-300)[:, None]
    a = np.where(var[:, None] > 1e-300, a, 0.0)
    d = y_mean[None, :] - a * z_mean[:, None]
    sq = ((yc**2) @ w)[None, :] - a**2 * var[:, None]  # residual variance of the regression
    err = np.sqrt(np.maximum(sq, 0.0))
    return np.where(finite[:, None], err, np.inf), a, d


def _evaluate(fn, xs: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return fn(torch.from_numpy(xs)[None, :] * torch.from_numpy(b)[:, None] + torch.from_numpy(c)[:, None]).numpy()


def _refine(fn, xs, y, w, starts) -> tuple[float, np.ndarray]:
    """Least squares over (b, c) from each start; a and d solved exactly inside."""
    sw = np.sqrt(w)

    def residual(bc: np.ndarray) -> np.ndarray:
        z = _evaluate(fn, xs, bc[:1], bc[1:])
        _, a, d = _regress(z, y[None], w)
        r = (a[0, 0] * z[0] + d[0, 0] - y) * sw
        return r if np.all(np.isfinite(r)) else np.full_like(y, 1e6)

    from scipy.optimize import least_squares  # here: scipy.optimize costs ~0.4 s at import

    def fit_from(start) -> tuple[float, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = least_squares(residual, np.asarray(start, dtype=np.float64), method="lm", max_nfev=MAX_EVALS)
        err, a, d = _regress(_evaluate(fn, xs, res.x[:1], res.x[1:]), y[None], w)
        return float(err[0, 0]), np.array([a[0, 0], res.x[0], res.x[1], d[0, 0]])

    best = min((fit_from(s) for s in starts), key=lambda f: f[0])
    if best[1][1] < 0:  # odd or even g fit as well with b > 0, the form people write
        mirrored = fit_from(-best[1][1:3])
        if mirrored[0] <= best[0] * 1.001 + 1e-7 * (1.0 + float(np.abs(y).max())):
            best = mirrored
    return best


def snap(target, lo: float, hi: float, sample: Tensor | None = None, channels: int = 1,
         candidates: list[str] | None = None, points: int = 256) -> Snap:
    """Snap a target (see :mod:`actlab.compress.target`) on [lo, hi] to a closed form.

    Per-channel targets get one expression with constants per channel, chosen
    by the error summed over channels.
    """
    candidates = candidate_expressions() if candidates is None else candidates
    xs = np.linspace(lo, hi, points)
    ys = target(torch.from_numpy(xs).expand(channels, -1)).numpy()
    w = _weights(xs, sample)
    bg, cg = (g.reshape(-1) for g in np.meshgrid(B_GRID, C_GRID))
    grid_scores = []
    for text in candidates:
        fn = compile_expression(parse(text))
        err, _, _ = _regress(_evaluate(fn, xs, bg, cg), ys, w)  # (G, C)
        starts = [np.stack([bg, cg], 1)[np.argsort(err[:, k])[:2]] for k in range(channels)]
        grid_scores.append((float(err.min(0).sum()), text, fn, starts))
    grid_scores.sort(key=lambda s: s[0])
    chosen = [g for size in sorted({_size(t) for t in candidates})
              for g in [g for g in grid_scores if _size(g[1]) == size][:REFINE]]
    refined = []
    for _, text, fn, starts in chosen:
        fits = [_refine(fn, xs, ys[k], w, [*starts[k], (1.0, 0.0)]) for k in range(channels)]
        refined.append((sum(f[0] for f in fits), text, np.stack([f[1] for f in fits])))
    best = min(e for e, _, _ in refined)
    noise = 1e-6 * (1.0 + float(np.abs(ys).max())) * channels
    _, text, params = min((r for r in refined if r[0] <= best * 1.001 + noise),
                          key=lambda r: (_size(r[1]), candidates.index(r[1])))
    module = SnappedActivation(text, *torch.from_numpy(params).float().unbind(1))
    with torch.no_grad():
        xt = torch.from_numpy(xs).float()
        approx = (module.curve(xt) if channels > 1 else module(xt)[None]).double().numpy()
    err = approx - ys
    return Snap(module, text, float(np.abs(err).max()), float(np.sqrt((err**2 @ w).mean())))


def snap_module(module: nn.Module, lo: float = -4.0, hi: float = 4.0, sample: Tensor | None = None,
                width: int = 1, ndim: int = 2, candidates: list[str] | None = None) -> Snap:
    """Snap an activation module on [lo, hi], per channel if it has per-channel parameters
    at a site of ``width`` (the :func:`actlab.compress.target.per_channel_width` rule)."""
    channels = per_channel_width(module, width, ndim)
    return snap(Target(module, channels, ndim), lo, hi, sample, channels, candidates)
