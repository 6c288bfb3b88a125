"""Padé activation units: learnable rational functions.

Molina, Schramowski & Kersting 2020, "Padé Activation Units: End-to-end
Learning of Flexible Activation Functions in Deep Networks"
(https://arxiv.org/abs/1907.06732). We use the paper's *safe* PAU,

    f(x) = (a_0 + a_1 x + ... + a_m x^m) / (1 + |b_1| |x| + ... + |b_n| |x|^n),

whose denominator is >= 1, so there are no poles. With ``num = den + 1`` (the
paper's 5/4) f grows at most linearly, which keeps ``|x| = 1e4`` finite in
float32 in forward and backward. The initial coefficients fit ``init`` (ReLU
by default): Sanathanan-Koerner linearised least squares, then L-BFGS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.learnable import _fit
from actlab.activations.learnable._autograd import run
from actlab.activations.learnable._autograd_rational import RationalFn
from actlab.activations.learnable._base import LearnableActivation
from actlab.activations.learnable._sharing import check_input, units
from actlab.activations.registry import register_activation
from actlab.activations.sites import Site
from actlab.errors import SpecError


def rational_flops(m: int, n: int) -> float:
    """A "safe" Padé activation P(x) / (1 + |Q(x)|) (Molina et al. 2020), P of degree m,
    Q of degree n without constant term: Horner 2m + 2n, then abs, add, divide."""
    return 2.0 * m + 2.0 * n + 3.0


class Rational(LearnableActivation):
    """Safe PAU ``P(x) / (1 + sum_k |b_k| |x|^k)``; see the module docstring."""

    family = "rational"
    unit_tensors = {"numerator": 0, "denominator": 0}

    def __init__(self, n_units: int = 1, num: int = 5, den: int = 4) -> None:
        super().__init__(n_units)
        self.numerator = nn.Parameter(torch.zeros(n_units, num + 1))
        self.denominator = nn.Parameter(torch.zeros(n_units, den))

    def flops_per_element(self) -> float:
        return rational_flops(self.numerator.shape[1] - 1, self.denominator.shape[1])

    def _forward(self, x: Tensor) -> Tensor:
        check_input(x, self.n_units)
        return run(RationalFn, x, self._per_channel(self.numerator), self._per_channel(self.denominator))

    def _fit_single(self, xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        a, b = sk_fit(xs[::2], ys[::2], self.numerator.shape[1] - 1, self.denominator.shape[1])
        x, target = xs[::2].reshape(-1, 1), ys[::2].reshape(-1, 1)
        a, b = a.reshape(1, -1).requires_grad_(True), b.reshape(1, -1).requires_grad_(True)
        _fit.lbfgs([a, b], lambda: (RationalFn.apply(x, a, b) - target).pow(2).mean())
        return {"numerator": a.detach()[0], "denominator": b.detach()[0]}

    def extra_repr(self) -> str:
        return f"{self._units_repr()}, num={self.numerator.shape[1] - 1}, den={self.denominator.shape[1]}"


def sk_fit(xs: Tensor, ys: Tensor, m: int, n: int, rounds: int = 5) -> tuple[Tensor, Tensor]:
    """A starting point: Sanathanan-Koerner iterations of the linearised fit.

    ``P(x) - y (|b| . |x|^k) ~ y`` is linear in (a, |b|); reweighting each row
    by the previous 1/Q makes it approach the true least-squares error.
    Denominator terms the fit wants negative are set small and positive.
    """
    powers = xs[:, None] ** torch.arange(m + 1, dtype=xs.dtype)
    abs_powers = xs.abs()[:, None] ** torch.arange(1, n + 1, dtype=xs.dtype)
    weight = torch.ones_like(xs)
    for _ in range(rounds):
        design = torch.cat([powers, -ys[:, None] * abs_powers], 1) * weight[:, None]
        sol = _fit.lstsq(design, ys * weight)
        a, b = sol[: m + 1], sol[m + 1 :].clamp_min(1e-4)
        weight = 1.0 / (1.0 + abs_powers @ b)
    return a, b


@register_activation("rational", "pau")
def rational(site: Site | None = None, /, num: int = 5, den: int = 4, sharing: str = "layer",
             groups: int | None = None, dim: int = 1, init: str = "relu", init_range: float | list = 3.0) -> nn.Module:
    """rational(num=5, den=4, sharing=layer, dim=1, init=relu, init_range=3): safe PAU.

    ``sharing=group`` takes ``groups=G`` parameter sets (see ``_sharing``)."""
    for name, value in (("num", num), ("den", den)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"rational {name} must be a positive integer, got {value!r}")
    module = Rational(units(sharing, site, groups), num, den)
    module.initialise(str(init), init_range, (num, den))
    module.share(sharing, site, dim, groups)
    return module
