"""The base class of the learnable families: sharing, init fitting, curves."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.learnable import _fit
from actlab.activations.learnable._sharing import unit_grid, ungrid


class LearnableActivation(nn.Module):
    """An elementwise activation with ``(C, ...)`` parameters, C = 1 for layer sharing.

    Subclasses set ``n_units`` and implement ``_fit_single(xs, ys)``, which fits
    one unit's parameters to the target values ``ys`` on points ``xs`` (float64)
    and returns them by name (parameter or buffer, without the leading C).
    """

    family = "learnable"

    def __init__(self, n_units: int) -> None:
        super().__init__()
        self.n_units = n_units
        self.init_error: dict[str, float] = {}

    def fit_error(self) -> dict[str, float]:
        """Max abs and RMS error of the initial fit on ``init_range`` (empty without a fit)."""
        return dict(self.init_error)

    def curve(self, xs: Tensor) -> Tensor:
        """Values on 1-D ``xs``: (C, len) for per-unit parameters, else (len,).

        Evaluated in eval mode, so that a curve never updates running statistics.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return ungrid(self(unit_grid(xs, self.n_units)), self.n_units)
        finally:
            self.train(was_training)

    def _fit_single(self, xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def initialise(self, init: str, init_range: float | list, key: tuple) -> None:
        """Fit every unit to activation ``init`` on ``init_range`` (a half-width or [lo, hi])."""
        lo, hi = _range(init_range)
        xs = _fit.grid(lo, hi)

        def fit() -> tuple[dict[str, Tensor], dict[str, float]]:
            ys = _fit.target_curve(init, xs)
            values = self._fit_single(xs, ys)
            self._load_single(values)
            pred = self.curve(xs.to(self._dtype())).reshape(self.n_units, -1)[0]
            return values, _fit.errors(pred, ys)

        values, self.init_error = _fit.cached_fit((self.family, key, init, lo, hi), fit)
        self._load_single(values)

    def _load_single(self, values: dict[str, Tensor]) -> None:
        tensors = dict(self.named_parameters()) | dict(self.named_buffers())
        with torch.no_grad():
            for name, value in values.items():
                target = tensors[name]
                target.copy_(value.to(target.dtype).expand_as(target))

    def _dtype(self) -> torch.dtype:
        return next(iter(self.parameters())).dtype


def _range(init_range: float | list) -> tuple[float, float]:
    if isinstance(init_range, (list, tuple)):
        if len(init_range) != 2 or not float(init_range[0]) < float(init_range[1]):
            raise ValueError(f"init_range must be a half-width or [lo, hi] with lo < hi, got {init_range}")
        return float(init_range[0]), float(init_range[1])
    if float(init_range) <= 0:
        raise ValueError(f"init_range must be positive, got {init_range}")
    return -float(init_range), float(init_range)
