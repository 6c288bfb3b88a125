"""Initialisation by fitting: make a learnable activation start as a known one.

Pure functions on tensors, in float64: the target curve of any activation spec
on a grid, a least-squares solve for families that are linear in their
parameters (slaf, spline), a short seeded L-BFGS run for the others (rational,
subnet), and the fit error. A CNN creates several identical sites, so results
are cached by (family, parameters, target, range).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# 513 points resolve a 64-knot spline on the fit range (8 samples per segment)
# and keep every fit well under a millisecond of lstsq time.
GRID_POINTS = 513

_CACHE: dict[tuple, tuple[dict[str, Tensor], dict[str, float]]] = {}


def grid(lo: float, hi: float, n: int = GRID_POINTS) -> Tensor:
    return torch.linspace(lo, hi, n, dtype=torch.float64)


def target_curve(init: str, xs: Tensor) -> Tensor:
    """The values of activation ``init`` (any spec) on 1-D points ``xs``, float64."""
    from actlab.activations.registry import make_activation  # the registry imports this package

    module = make_activation(init).to(torch.float64)
    with torch.no_grad():
        return module(xs.reshape(-1, 1)).reshape(-1).to(torch.float64)


def lstsq(design: Tensor, y: Tensor) -> Tensor:
    """Least-squares coefficients for ``design @ c ~ y``; design (L, K) or batched (C, L, K)."""
    # gelsd (SVD) copes with the rank-deficient designs of high-degree bases; it exists on CPU only,
    # and these systems are small, so an accelerator's calibration solves them there.
    solution = torch.linalg.lstsq(design.cpu(), y.unsqueeze(-1).cpu(), driver="gelsd").solution
    return solution.squeeze(-1).to(design.device)


def errors(pred: Tensor, y: Tensor) -> dict[str, float]:
    diff = (pred.to(torch.float64) - y).abs()
    return {"max_abs": float(diff.max()), "rms": float(diff.pow(2).mean().sqrt())}


def lbfgs(params: list[Tensor], loss_fn: Callable[[], Tensor], iters: int = 100) -> None:
    """Minimise ``loss_fn`` over ``params`` in place with L-BFGS (deterministic)."""
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, tolerance_grad=1e-12,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def cached_fit(key: tuple, fit: Callable[[], tuple[dict[str, Tensor], dict[str, float]]]
               ) -> tuple[dict[str, Tensor], dict[str, float]]:
    """``fit()`` once per key; returns copies so callers may modify them."""
    if key not in _CACHE:
        _CACHE[key] = fit()
    values, err = _CACHE[key]
    return {k: v.clone() for k, v in values.items()}, dict(err)
