"""Learnable spline activations on a uniform grid.

``order=1``: a linear B-spline (piecewise linear) with learnable values at
``knots`` equally spaced points on [lo, hi] (Bohra et al. 2020, "Learning
Activation Functions in Deep (Spline) Neural Networks",
https://arxiv.org/abs/2001.06263). ``order=3``: a cubic B-spline whose
``knots`` coefficients sit one grid step beyond each end, so [lo, hi] is
fully covered. Outside [lo, hi] both continue linearly with the end slope.

``tv > 0`` makes ``regularization()`` return ``tv * sum |c[i+1] - 2 c[i] + c[i-1]| / h``,
the second-order total variation of a linear spline (the summed jumps of its
slope; for the cubic spline the same expression on its coefficients).

Range calibration follows PWLU (Zhu et al. 2021, https://arxiv.org/abs/2104.03693):
the mean and standard deviation of the inputs seen while calibrating (inside
``with module.calibrating():``, or the first ``calibrate_batches`` training
batches with ``calibrate=true``) set the grid to mean +- ``calibrate_sigmas``
std per unit; the values are then refitted by least squares so that the
function stays the same on the new grid. With ``sharing=group`` a group's grid
takes the statistics of all its channels.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from actlab.activations.learnable import _fit
from actlab.activations.learnable._autograd import run
from actlab.activations.learnable._autograd_spline import CubicSplineFn, LinearSplineFn
from actlab.activations.learnable._base import LearnableActivation
from actlab.activations.learnable._sharing import check_input, units
from actlab.activations.registry import register_activation
from actlab.activations.sites import Site
from actlab.errors import SpecError


def spline_flops(kind: str = "linear") -> float:
    """A learnable spline on a uniform grid costs what its compressed counterpart costs."""
    return 8.0 if kind == "linear" else 22.0


def segments(knots: int, order: int) -> int:
    return knots - 1 if order == 1 else knots - 3


def spline_eval(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor, order: int) -> Tensor:
    """The spline with knot values (C, K) on grids [lo, hi] (C,) at x (N, C, ...)."""
    # One op per call: the segment table is built inside (see LinearSplineFn, CubicSplineFn).
    return run(LinearSplineFn if order == 1 else CubicSplineFn, x, values, lo, hi)


class Spline(LearnableActivation):
    """A learnable linear or cubic spline; see the module docstring."""

    family = "spline"
    unit_tensors = {"values": 0, "lo": 0, "hi": 0}

    def __init__(self, n_units: int = 1, knots: int = 32, lo: float = -3.0, hi: float = 3.0, order: int = 1,
                 tv: float = 0.0, calibrate: bool = False, calibrate_batches: int = 10,
                 calibrate_sigmas: float = 3.0) -> None:
        super().__init__(n_units)
        self.knots, self.order, self.tv = knots, order, float(tv)
        self.values = nn.Parameter(torch.zeros(n_units, knots))
        self.register_buffer("lo", torch.full((n_units,), float(lo)))
        self.register_buffer("hi", torch.full((n_units,), float(hi)))
        self.calibrate_batches = calibrate_batches if calibrate else 0
        self.calibrate_sigmas = float(calibrate_sigmas)
        # Batches seen for calibration; a buffer so a resumed run does not calibrate twice.
        self.register_buffer("calibrated_batches", torch.zeros((), dtype=torch.long))
        self._stats: Tensor | None = None  # inside calibrating()
        self._auto_stats: Tensor | None = None  # during the first training batches

    def flops_per_element(self) -> float:
        return spline_flops("linear" if self.order == 1 else "cubic")

    def _forward(self, x: Tensor) -> Tensor:
        check_input(x, self.n_units)
        # Checked in this order so that without calibration forward reads no buffer
        # value (torch.compile would break the graph on it).
        if self._stats is not None or (self.calibrate_batches and self.training
                                       and int(self.calibrated_batches) < self.calibrate_batches):
            self._observe(x)
        return spline_eval(x, self._per_channel(self.values), self._per_channel(self.lo).to(x.dtype),
                           self._per_channel(self.hi).to(x.dtype), self.order)

    def regularization(self) -> Tensor:
        if self.tv == 0.0:
            return self.values.new_zeros(())
        h = (self.hi - self.lo) / segments(self.knots, self.order)
        d2 = self.values[:, 2:] - 2 * self.values[:, 1:-1] + self.values[:, :-2]
        return self.tv * (d2.abs().sum(1) / h).sum()

    @contextmanager
    def calibrating(self) -> Iterator[None]:
        """Collect input statistics inside the block; on exit, move the grid there."""
        self._stats = self.lo.new_zeros(3, self.lo.shape[0], dtype=torch.float64)
        try:
            yield
        finally:
            stats, self._stats = self._stats, None
            self._recalibrate(stats)

    def _observe(self, x: Tensor) -> None:
        dims = [d for d in range(x.dim()) if not (self.n_units > 1 and d == 1)]
        xd = x.detach().to(torch.float64)
        count = xd.numel() / self.n_units
        batch = torch.stack([xd.new_full((self.n_units,), count),
                             xd.sum(dims).reshape(-1), (xd * xd).sum(dims).reshape(-1)])
        batch = batch.reshape(3, self.lo.shape[0], -1).sum(-1)  # a group's channels summed
        if self._stats is not None:
            self._stats += batch
            return
        self._auto_stats = batch if self._auto_stats is None else self._auto_stats + batch
        self.calibrated_batches += 1
        if int(self.calibrated_batches) == self.calibrate_batches:
            self._recalibrate(self._auto_stats)

    def _recalibrate(self, stats: Tensor) -> None:
        count, total, sq = stats
        if float(count.min()) < 2:
            return
        mean = total / count
        std = (sq / count - mean * mean).clamp_min(0.0).sqrt()
        lo, hi = mean - self.calibrate_sigmas * std, mean + self.calibrate_sigmas * std
        ok = std > 1e-6  # a dead unit keeps its grid
        lo = torch.where(ok, lo, self.lo.double())
        hi = torch.where(ok, hi, self.hi.double())
        with torch.no_grad():
            xs = torch.stack([_fit.grid(float(a), float(b)) for a, b in zip(lo, hi)], 1).to(lo.device)  # (L, C)
            ys = spline_eval(xs, self.values.double(), self.lo.double(), self.hi.double(), self.order)
            designs = torch.stack([self._design(xs[:, c], lo[c], hi[c]) for c in range(len(lo))])
            values = _fit.lstsq(designs, ys.t())
            self.lo.copy_(lo)
            self.hi.copy_(hi)
        self._assign("values", values)  # inside a call of another dtype, self.values is a cast copy

    def _design(self, xs: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """(L, K): every knot's basis function at the 1-D points xs."""
        k = self.knots
        x = xs.reshape(-1, 1).expand(-1, k)
        return spline_eval(x, torch.eye(k, dtype=xs.dtype, device=xs.device), lo.expand(k), hi.expand(k), self.order)

    def _fit_single(self, xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        return {"values": _fit.lstsq(self._design(xs, self.lo[0].double(), self.hi[0].double()), ys)}

    def extra_repr(self) -> str:
        return f"{self._units_repr()}, knots={self.knots}, order={self.order}, tv={self.tv}"


@register_activation("spline")
def spline(site: Site | None = None, /, knots: int = 32, range: float = 3.0, lo: float | None = None,
           hi: float | None = None, order: int = 1, tv: float = 0.0, calibrate: bool = False,
           calibrate_batches: int = 10, calibrate_sigmas: float = 3.0, sharing: str = "layer",
           groups: int | None = None, dim: int = 1, init: str = "relu",
           init_range: float | list | None = None) -> nn.Module:
    """spline(knots=32, range=3 | lo=, hi=, order=1|3, tv=0, calibrate=false, sharing=layer, dim=1, init=relu).

    ``sharing=group`` takes ``groups=G`` parameter sets (see ``_sharing``)."""
    if order not in (1, 3):
        raise SpecError(f"spline order must be 1 (linear) or 3 (cubic), got {order!r}")
    least = 3 if order == 1 else 5
    if not isinstance(knots, int) or isinstance(knots, bool) or knots < least:
        raise SpecError(f"spline knots must be an integer >= {least} for order={order}, got {knots!r}")
    lo = -float(range) if lo is None else float(lo)
    hi = float(range) if hi is None else float(hi)
    if not lo < hi:
        raise SpecError(f"spline needs lo < hi, got lo={lo}, hi={hi}")
    if float(tv) < 0:
        raise SpecError(f"spline tv must be >= 0, got {tv!r}")
    module = Spline(units(sharing, site, groups), knots, lo, hi, order, float(tv), bool(calibrate),
                    int(calibrate_batches), float(calibrate_sigmas))
    module.initialise(str(init), [lo, hi] if init_range is None else init_range,
                      (knots, lo, hi, order))
    module.share(sharing, site, dim, groups)
    return module
