"""What a compressed form does beyond its calibration range: the target's own tails.

A fit covers the calibration range, the percentiles of the inputs a site saw.
Beyond it every compressed form continues as a straight line, and that line
should be the target's, not an accident of the last table segment:

* **Tail slopes** (:func:`tail_slopes`): per channel, the line through the
  range end ``(lo, f(lo))`` whose slope is the mean of the secant slopes
  from there to 64 points evenly spaced over the window ``[lo - W, lo]``
  (and likewise beyond ``hi``), ``W = hi - lo``, which covers the inputs
  twice as large as those seen (the stress set of
  :mod:`actlab.compress.fidelity`). For a target that is affine there (a
  spline or SLAF beyond its own breakpoints, GELU's right side) this is its
  own continuation; for a rational or an expression it is a compromise
  between its slope near the range end and further out. The plain
  least-squares line and windows of two widths follow the asymptote further
  out but changed outputs on the stress set more (2-6x on the smoke grid,
  ``bench/compress_accuracy.py --stress --quick``). A window where the target
  is not finite (``exp`` far out) keeps the end segment's slope, as before.
* **Breakpoints** (:func:`linear_beyond`): actlab's spline and SLAF are affine
  beyond a range of their own; a table's or cubic spline's range is widened to
  cover it when that costs little resolution (up to ``MAX_WIDEN`` times the
  calibration width), so the tails above are exact. A polynomial is never
  widened: it is one function over its whole range, and a wider range costs
  accuracy everywhere (measured in bench/compress_accuracy.py --stress).
* **Exact forms** (:func:`exact_form`): a linear spline *is* a lookup table and
  a cubic B-spline *is* a cubic table: they are compressed by reusing their
  knots, exactly at any input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.learnable._autograd_spline import cubic_table
from actlab.activations.learnable.slaf import SLAF
from actlab.activations.learnable.spline import Spline
from actlab.compress.modules import CubicActivation, PWLActivation

MAX_WIDEN = 2.0  # the widened range is at most this many times the calibration width
WINDOW = 1.0  # tail windows span this many calibration widths beyond each end
POINTS = 64


def linear_beyond(module: nn.Module) -> tuple[Tensor, Tensor] | None:
    """Per-channel (a, b) such that ``module`` is affine below a and above b, or None if unknown."""
    if isinstance(module, Spline):  # on the CPU, where ranges and fits are computed, wherever the model is
        return module.lo.detach().cpu().double(), module.hi.detach().cpu().double()
    if isinstance(module, SLAF) and not module.basis.periodic:
        r = torch.full((module.n_units,), module.range, dtype=torch.float64)
        return -r, r
    return None


def widen(lo: Tensor, hi: Tensor, module: nn.Module) -> tuple[Tensor, Tensor]:
    """The calibration range widened to cover the module's breakpoints, if it has any nearby."""
    known = linear_beyond(module)
    if known is None:
        return lo, hi
    a, b = known
    if a.numel() != lo.numel():  # a per-channel module fitted as one function, or the reverse
        a, b = a.min().expand_as(lo), b.max().expand_as(lo)
    new_lo, new_hi = torch.minimum(lo, a), torch.maximum(hi, b)
    ok = (new_hi - new_lo) <= MAX_WIDEN * (hi - lo)
    return torch.where(ok, new_lo, lo), torch.where(ok, new_hi, hi)


def tail_slopes(target, lo: Tensor, hi: Tensor) -> Tensor:
    """(C, 2) slopes of the target's tail lines below lo and above hi; NaN where it is not finite there."""
    w = WINDOW * (hi - lo)
    steps = torch.linspace(0.0, 1.0, POINTS + 1, dtype=torch.float64)[1:]
    d = w[:, None] * steps  # (C, P) distances beyond the ends
    xs = torch.cat([lo[:, None], lo[:, None] - d, hi[:, None], hi[:, None] + d], 1)
    f = target(xs)
    f_lo, left, f_hi, right = f[:, :1], f[:, 1:POINTS + 1], f[:, POINTS + 1:POINTS + 2], f[:, POINTS + 2:]
    s_left = ((left - f_lo) / -d).mean(1)  # the mean secant slope from the range end
    s_right = ((right - f_hi) / d).mean(1)
    slopes = torch.stack([s_left, s_right], 1)
    return torch.where(torch.isfinite(slopes), slopes, torch.nan)


def exact_form(module: nn.Module, method: str, fast: str = "auto") -> nn.Module | None:
    """The compressed form that equals ``module`` everywhere, or None: splines reuse their knots."""
    if not isinstance(module, Spline):
        return None
    # built on the CPU like every fit (compress_model moves the replacement to the model's device)
    values, lo, hi = module.values.detach().cpu().double(), module.lo.detach().cpu(), module.hi.detach().cpu()
    if module.order == 1 and method == "pwl":
        return PWLActivation(values.float(), lo, hi, fast=fast)
    if module.order == 3 and method == "cubic":
        return CubicActivation(cubic_table(values).float(), lo, hi)
    return None
