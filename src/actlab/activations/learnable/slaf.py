"""SLAF: a learnable linear combination of basis functions.

Goyal, Goyal & Lall 2019, "Learning Activation Functions: A new paradigm for
understanding Neural Networks" (https://arxiv.org/abs/1906.09529):
``f(x) = sum_k a_k phi_k(x)`` with learnable ``a_k``.

Stability, the choices made here:

* Inputs are scaled, ``z = x / range`` (``range`` = 3 by default, the span of
  batch-normalised pre-activations), so every basis works on [-1, 1].
* Polynomial bases (monomial, chebyshev, legendre, hermite) and ``rbf`` are
  evaluated at ``clamp(z, -1, 1)`` and continued *linearly* outside with the
  end slope: ``f(z) = p(zc) + p'(zc) (z - zc)``. The activation is then at
  most linear for ``|x| = 1e4`` at any degree, and its gradient is bounded.
* ``fourier`` (1, cos(pi k z / 2), sin(pi k z / 2)) is periodic with period
  ``4 * range`` (the fit range is half a period, so ReLU fits without Gibbs
  ringing) and bounded everywhere; no clamping.
* Each term is scaled so that ``max |phi_k| = 1`` on [-1, 1] (only Hermite
  needs it), so Adam's step means the same at every degree; degree 16 trains.
* ``hybrid=true`` adds ``w * relu(x)`` with a learnable ``w`` (reported by
  ``scalars()``).
* ``standardize=true`` is the paper's option of standardising each term
  ``phi_k`` (k >= 1) with batch statistics in training and running averages
  in eval, like BatchNorm. It couples the elements of a batch, so it uses
  plain autograd (``degree + 1`` saved tensors per site) instead of the lean
  kernel; the initial fit holds for the initial running statistics (mean 0,
  variance 1). With ``sharing=group`` the statistics are a group's, over its channels
  and the batch, like its coefficients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.flops import TRANSCENDENTAL
from actlab.activations.learnable import _fit
from actlab.activations.learnable._autograd import SlafFn, run
from actlab.activations.learnable._base import LearnableActivation
from actlab.activations.learnable._sharing import bcast, check_input, units
from actlab.activations.learnable.bases import BASES, design, end_derivatives
from actlab.activations.registry import register_activation
from actlab.activations.sites import Site
from actlab.errors import SpecError


SLAF_PER_DEGREE = {"monomial": 2.0, "power": 2.0, "chebyshev": 4.0, "hermite": 4.0, "legendre": 5.0,
                   "fourier": 8.0, "rbf": 4.0 + TRANSCENDENTAL}
# scale x by 1/range, clamp to [-1, 1], and the linear tail beyond it (excess * edge slope + add)
SLAF_OVERHEAD = 5.0


def slaf_flops(degree: int, basis: str = "monomial", hybrid: bool = False) -> float:
    """sum_k a_k B_k(x): Horner for monomials (2 per degree); a three-term recurrence
    (chebyshev T_{k+1} = 2x T_k - T_{k-1}: mul + sub, plus the accumulate's multiply-add: 4;
    legendre needs one more multiply for its coefficients: 5) for the orthogonal bases;
    fourier: sin/cos of the harmonics by the angle-addition recurrence (4 mul + 2 add) and two
    multiply-adds; rbf: difference, square, scale, exp and a multiply-add per centre. Plus the
    input scaling with linear tails, and a weighted ReLU (3) for the hybrid form."""
    return SLAF_PER_DEGREE[basis] * degree + SLAF_OVERHEAD + (3.0 if hybrid else 0.0)

_EPS = 1e-5


class SLAF(LearnableActivation):
    """sum_k a_k phi_k(x / range) with linear tails; see the module docstring."""

    family = "slaf"
    unit_tensors = {"coef": 0, "relu_weight": 0, "running_mean": 0, "running_var": 0}

    def __init__(self, n_units: int = 1, degree: int = 4, basis: str = "monomial", hybrid: bool = False,
                 standardize: bool = False, range_: float = 3.0, momentum: float = 0.1) -> None:
        super().__init__(n_units)
        self.basis_name, self.basis = basis, BASES.get(basis)
        self.degree, self.range, self.momentum = degree, float(range_), float(momentum)
        n = self.basis.size(degree)
        self.coef = nn.Parameter(torch.zeros(n_units, n))
        self.relu_weight = nn.Parameter(torch.zeros(n_units)) if hybrid else None
        self.register_buffer("scale", self.basis.scale(n).float())
        self.register_buffer("dends", end_derivatives(self.basis, n).float())
        self.standardize = standardize
        if standardize:
            self.register_buffer("running_mean", torch.zeros(n_units, n))
            self.register_buffer("running_var", torch.ones(n_units, n))
            # The constant term stays as is, so the bias survives standardisation.
            self.register_buffer("std_mask", (torch.arange(n) > 0).float())

    def flops_per_element(self) -> float:
        return slaf_flops(self.degree, self.basis_name, self.relu_weight is not None)

    def _forward(self, x: Tensor) -> Tensor:
        check_input(x, self.n_units)
        if self.standardize:
            return self._standardized(x)
        return run(SlafFn, x, self._per_channel(self.coef), self.scale.to(x.dtype), self._relu_weight(),
                   self.dends.to(x.dtype), 1.0 / self.range, self.basis_name)

    def _relu_weight(self) -> Tensor | None:
        return None if self.relu_weight is None else self._per_channel(self.relu_weight)

    def _standardized(self, x: Tensor) -> Tensor:
        """sum_k a_k (phi_k - mean_k) / std_k, evaluated as a plain slaf with coefficients
        coef_k / std_k minus a constant: the same tails (so +-inf meets no inf - inf between
        terms) and the same kernels. Training takes the statistics of this batch's phi, per
        unit: a group's over its C/G channels, which dim 1 is split into."""
        rows, n = self.coef.shape
        if self.training:
            phi = design(self.basis, x / self.range, n)
            if rows > 1:
                phi = phi.unflatten(1, (rows, -1))
            dims = [d for d in range(phi.dim() - 1) if not (rows > 1 and d == 1)]
            mean = phi.mean(dims).reshape(rows, -1)
            var = phi.var(dims, unbiased=False).reshape(rows, -1)
            with torch.no_grad():
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
        else:  # in x's dtype: float64 inputs are standardised in float64
            mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        mask = self.std_mask.to(mean.dtype)
        inv_std = torch.rsqrt(var * mask + (1 - mask) + _EPS)
        coef = self.coef * inv_std
        scale = self.scale.to(coef.dtype)
        shift = (coef * scale * mean * mask).sum(-1)
        out = run(SlafFn, x, self._per_channel(coef), scale, self._relu_weight(), self.dends.to(coef.dtype),
                  1.0 / self.range, self.basis_name)
        return out - bcast(self._per_channel(shift).to(out.dtype), x)

    def _fit_single(self, xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        n = self.coef.shape[1]
        cols = design(self.basis, xs / self.range, n) * self.basis.scale(n)
        if self.standardize:
            cols = cols * (1 + _EPS) ** -0.5
        if self.relu_weight is not None:
            cols = torch.cat([cols, torch.relu(xs)[:, None]], 1)
        c = _fit.lstsq(cols, ys)
        values = {"coef": c[:n]}
        if self.relu_weight is not None:
            values["relu_weight"] = c[n]
        return values

    def scalars(self) -> dict[str, float]:
        if self.relu_weight is None:
            return {}
        return {"relu_weight": float(self.relu_weight.detach().mean())}

    def extra_repr(self) -> str:
        return (f"{self._units_repr()}, degree={self.degree}, basis={self.basis_name}, range={self.range}, "
                f"hybrid={self.relu_weight is not None}, standardize={self.standardize}")


@register_activation("slaf")
def slaf(site: Site | None = None, /, degree: int = 4, basis: str = "monomial", hybrid: bool = False,
         standardize: bool = False, range: float = 3.0, sharing: str = "layer", groups: int | None = None,
         dim: int = 1, init: str = "relu", init_range: float | list | None = None, momentum: float = 0.1) -> nn.Module:
    """slaf(degree=4, basis=monomial, hybrid=false, standardize=false, range=3, sharing=layer, dim=1, init=relu).

    ``sharing=group`` takes ``groups=G`` parameter sets (see ``_sharing``)."""
    if not isinstance(degree, int) or isinstance(degree, bool) or degree < 1:
        raise SpecError(f"slaf degree must be a positive integer, got {degree!r}")
    if float(range) <= 0:
        raise SpecError(f"slaf range must be positive, got {range!r}")
    BASES.get(str(basis))
    module = SLAF(units(sharing, site, groups), degree, str(basis), bool(hybrid), bool(standardize), float(range),
                  float(momentum))
    module.initialise(str(init), range if init_range is None else init_range,
                      (degree, str(basis), bool(hybrid), bool(standardize), float(range)))
    module.share(sharing, site, dim, groups)
    return module
