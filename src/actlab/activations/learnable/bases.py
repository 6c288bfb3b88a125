"""Basis functions for SLAF, one registry entry per basis.

Every basis lives on ``z = x / range``. Polynomial and RBF bases are evaluated
at ``zc = clamp(z, -1, 1)`` and continued linearly outside ``[-1, 1]`` with the
end slope (see ``slaf``), so a degree-16 polynomial cannot overflow for
``|x| = 1e4``. The Fourier basis is periodic with period ``4 * range`` and
bounded everywhere, so it is not clamped. ``terms`` yields ``(phi_k, dphi_k/dz)``
lazily so that evaluation keeps one or two full-size tensors alive at a time;
a term may be a Python float (the constant term).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from actlab._registry import Registry

Term = Tensor | float


class Basis:
    """A family of functions ``phi_0 .. phi_{n-1}`` on z, with derivatives."""

    periodic = False

    def __init__(self) -> None:
        self._scales: dict[int, Tensor] = {}

    def size(self, degree: int) -> int:
        return degree + 1

    def terms(self, z: Tensor, n: int, deriv: bool) -> Iterator[tuple[Term, Term]]:
        raise NotImplementedError

    def scale(self, n: int) -> Tensor:
        """Per-term factors that make ``max |phi_k|`` on [-1, 1] equal to 1.

        Folded into the coefficients (a small tensor), so every basis feeds
        O(1) terms to the optimiser and Adam's step size means the same for
        every degree.
        """
        if n in self._scales:
            return self._scales[n]
        z = torch.linspace(-1.0, 1.0, 2001, dtype=torch.float64)
        peaks = torch.stack([torch.as_tensor(p, dtype=torch.float64).abs().max()
                             for p, _ in self.terms(z, n, deriv=False)])
        self._scales[n] = 1.0 / peaks.clamp_min(1e-12)
        return self._scales[n]


class ThreeTerm(Basis):
    """phi_0 = 1, phi_1 = a0 z, phi_{k+1} = alpha_k z phi_k - gamma_k phi_{k-1}."""

    def __init__(self, a0: float, alpha: Callable[[int], float], gamma: Callable[[int], float]) -> None:
        super().__init__()
        self.a0, self.alpha, self.gamma = a0, alpha, gamma

    def terms(self, z: Tensor, n: int, deriv: bool) -> Iterator[tuple[Term, Term]]:
        yield 1.0, 0.0
        if n == 1:
            return
        prev, dprev = 1.0, 0.0
        cur = z * self.a0
        dcur: Term = self.a0
        yield cur, dcur
        for k in range(1, n - 1):
            al, ga = self.alpha(k), self.gamma(k)
            # One new tensor per term, the rest in place: on CPU allocation dominates.
            nxt = z * cur
            if al != 1.0:
                nxt.mul_(al)
            if ga:
                nxt.sub_(prev, alpha=ga) if isinstance(prev, Tensor) else nxt.sub_(ga * prev)
            if deriv:
                dnxt = (z * dcur).add_(cur)
                if al != 1.0:
                    dnxt.mul_(al)
                if ga:
                    dnxt.sub_(dprev, alpha=ga) if isinstance(dprev, Tensor) else dnxt.sub_(ga * dprev)
                dprev, dcur = dcur, dnxt
            prev, cur = cur, nxt
            yield cur, (dcur if deriv else 0.0)


class Fourier(Basis):
    """1, cos(pi k z / 2), sin(pi k z / 2), k = 1..degree: period 4 in z.

    The fit range [-1, 1] is half a period, so a non-periodic target such as
    ReLU (0 at one end, 3 at the other) is fitted without Gibbs ringing at the
    ends; beyond the range the function continues periodically (bounded).
    """

    periodic = True

    def size(self, degree: int) -> int:
        return 2 * degree + 1

    def terms(self, z: Tensor, n: int, deriv: bool) -> Iterator[tuple[Term, Term]]:
        yield 1.0, 0.0
        for k in range(1, (n - 1) // 2 + 1):
            w = math.pi * k / 2
            c, s = torch.cos(w * z), torch.sin(w * z)
            yield c, (-w * s if deriv else 0.0)
            yield s, (w * c if deriv else 0.0)


class RBF(Basis):
    """Gaussians on degree+1 equally spaced centres over [-1, 1], width = spacing."""

    def terms(self, z: Tensor, n: int, deriv: bool) -> Iterator[tuple[Term, Term]]:
        width = 2.0 / max(n - 1, 1)
        for c in torch.linspace(-1.0, 1.0, n).tolist():
            u = (z - c) / width
            phi = torch.exp(-u * u)
            yield phi, ((-2.0 / width) * u * phi if deriv else 0.0)


# The recurrence coefficients as named functions, not lambdas, so that a module holding a
# basis pickles (torch.save of a whole model, multiprocessing).
def _one(k: int) -> float:
    return 1.0


def _zero(k: int) -> float:
    return 0.0


def _two(k: int) -> float:
    return 2.0


def _legendre_a(k: int) -> float:
    return (2 * k + 1) / (k + 1)


def _legendre_c(k: int) -> float:
    return k / (k + 1)


def _hermite_c(k: int) -> float:
    return 2.0 * k


BASES: Registry[Basis] = Registry("slaf basis")
BASES.add("monomial", ThreeTerm(1.0, _one, _zero))
BASES.add("chebyshev", ThreeTerm(1.0, _two, _one))
BASES.add("legendre", ThreeTerm(1.0, _legendre_a, _legendre_c))
# Physicists' Hermite polynomials; scale() normalises their large values on [-1, 1].
BASES.add("hermite", ThreeTerm(2.0, _two, _hermite_c))
BASES.add("fourier", Fourier())
BASES.add("rbf", RBF())


def end_derivatives(basis: Basis, n: int) -> Tensor:
    """(2, n): d phi_k / dz at z = -1 and z = +1 (unscaled), the slopes of the tails."""
    z = torch.tensor([-1.0, 1.0], dtype=torch.float64)
    return torch.stack([torch.as_tensor(d, dtype=torch.float64).expand(2) for _, d in basis.terms(z, n, deriv=True)], 1)


def design(basis: Basis, z: Tensor, n: int) -> Tensor:
    """The (..., n) basis terms at z (any shape), with the linear tails, unscaled.

    The plain-autograd reference of the lean SLAF kernel; also the
    least-squares design matrix of the initial fit.
    """
    zc = z if basis.periodic else z.clamp(-1.0, 1.0)
    out = z - zc
    cols = [torch.as_tensor(p, dtype=z.dtype, device=z.device).expand_as(z)
            + torch.as_tensor(d, dtype=z.dtype, device=z.device) * out
            for p, d in basis.terms(zc, n, deriv=True)]
    return torch.stack(cols, dim=-1)
