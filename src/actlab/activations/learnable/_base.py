"""The base class of the learnable families: sharing, dtypes, init fitting, curves.

Group sharing (``_sharing``) keeps ``(G, ...)`` unit tensors while ``n_units``
counts the C channels of the input; a family's ``_forward`` takes its unit
tensors through ``_per_channel``, which repeats each group's row C/G times.

The dtype policy, the same for every family: the output has the input's
dtype. float32 and float64 inputs are computed in their own dtype, with the
parameters cast on the fly where they differ (a float64 probe of a float32
model); bfloat16 and float16 inputs are computed in float32, autocast off, and
the result is rounded back, which is as accurate as the half type allows.
Gradients reach the parameters in their own dtype. Under autocast a float32
input stays float32: the families keep autocast out of their own ops.
NaN gives NaN; +-inf gives the function's limit: +-inf along a sloped tail,
the tail's value where it is flat (never 0 * inf), subnet's and rational's
limits from their weights; NaN where there is none (the periodic fourier
basis). float32 inputs beyond FLT_MAX * h (h a spline's knot step, e.g.
|x| > 6.6e37 for 32 knots on [-3, 3]) overflow to +-inf with the right sign.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
from torch import Tensor, nn

from actlab import _devices
from actlab.activations.learnable import _fit
from actlab.activations.learnable._sharing import check_groups, unit_grid, ungrid
from actlab.errors import SpecError


class LearnableActivation(nn.Module):
    """An elementwise activation with ``(C, ...)`` parameters, C = 1 for layer sharing, G for groups.

    Subclasses set ``n_units`` and implement ``_fit_single(xs, ys)``, which fits
    one unit's parameters to the target values ``ys`` on points ``xs`` (float64)
    and returns them by name (parameter or buffer, without the leading C).
    """

    family = "learnable"
    # the per-unit parameters and buffers, and the dim of each that indexes the units
    unit_tensors: dict[str, int] = {}

    def __init__(self, n_units: int) -> None:
        super().__init__()
        self.n_units = n_units
        self.init_error: dict[str, float] = {}
        self.channel_dim = 1  # where the channels are in the input: 1 for (N, C, ...), -1 for (B, T, D)
        self.lazy_units = False  # per-channel sharing without a Site: the width comes from the first input
        self.groups = 0  # sharing=group: G parameter sets for the n_units channels; 0 otherwise

    def share(self, sharing: str, site, dim: int, groups: int | None = None) -> LearnableActivation:
        """Set the channel dim and the groups (made with G units, the fit's); without a site,
        per-channel units, or the channel count of G > 1 groups, come from the first input."""
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise SpecError(f"dim must be an integer (1 for (N, C, ...), -1 for channels last), got {dim!r}")
        self.channel_dim = dim
        self.groups = int(groups) if sharing == "group" else 0
        self.lazy_units = site is None and sharing != "layer" and self.groups != 1  # one group: layer sharing
        if self.groups > 1 and site is not None:
            self._grow(int(site.num_features))
        return self

    def _per_channel(self, t: Tensor, dim: int = 0) -> Tensor:
        """Unit tensor ``t`` with one row per channel along ``dim``: a group's row repeated
        C/G times (differentiable, so each group's gradient is the sum over its channels)."""
        rows = t.shape[dim]
        if rows == self.n_units:
            return t
        return t.repeat_interleave(self.n_units // rows, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``_forward`` with the channels moved to dim 1, in the dtype of the module docstring."""
        if self.lazy_units:
            self._materialise(x)
        if not torch.jit.is_scripting():
            # the one check of the common case: the input has the parameters' dtype and device
            p = next(iter(self._parameters.values()))
            if x.dtype != p.dtype or x.device != p.device:
                return self._forward_cast(x)
        return self._forward_channels(x)

    def _forward_channels(self, x: Tensor) -> Tensor:
        """``_forward`` with the channels moved to dim 1 (a free reshape when they are last)."""
        if self.n_units == 1 or self.channel_dim == 1:
            return self._forward(x)
        if (x.dim() < 2 or self.channel_dim >= x.dim() or self.channel_dim < -x.dim()
                or x.size(self.channel_dim) != self.n_units):
            self._wrong_width(x)
        d = self.channel_dim % x.dim()
        if d == 1:
            return self._forward(x)
        if d == x.dim() - 1:
            return self._forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)
        return self._forward(x.movedim(d, 1)).movedim(1, d)

    def _forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    @torch.jit.unused
    def _forward_cast(self, x):
        """An input of another dtype than the parameters: computed as the module docstring says
        (another device, or a non-float input, is one line of error)."""
        _devices.check_input(self.family, x, next(iter(self._parameters.values())))
        dtype = torch.float32 if x.dtype.itemsize < 4 else x.dtype
        no_autocast = (torch.autocast(x.device.type, enabled=False)
                       if torch.amp.is_autocast_available(x.device.type) else nullcontext())
        with no_autocast, self._parameters_as(dtype):
            return self._forward_channels(x.to(dtype)).to(x.dtype)

    @contextmanager
    def _parameters_as(self, dtype: torch.dtype) -> Iterator[None]:
        """This module's own parameters cast to ``dtype`` inside the block (differentiably:
        gradients reach the originals), as ``torch.func.functional_call`` swaps them, and like
        it not for two threads calling one module with different dtypes at once."""
        own = self._parameters
        originals = {name: p for name, p in own.items() if p is not None and p.dtype != dtype}
        self._cast_from = originals
        try:
            for name, p in originals.items():
                own[name] = p.to(dtype)
            yield
        finally:
            own.update(originals)
            self._cast_from = {}

    @torch.jit.unused
    def _assign(self, name, value):
        """Copy ``value`` into parameter ``name``, also inside ``_parameters_as``, where the
        attribute is a cast copy: the parameter itself changes and the copy follows it."""
        cast_from = getattr(self, "_cast_from", {})
        original = cast_from.get(name, getattr(self, name))
        with torch.no_grad():
            original.copy_(value)
        if name in cast_from:
            self._parameters[name] = original.to(self._parameters[name].dtype)

    @torch.jit.unused
    def _wrong_width(self, x):  # unannotated: TorchScript reads an unused method's signature only
        raise SpecError(f"{self.family} has {self.n_units} channels along dim {self.channel_dim} "
                        f"but got input of shape {tuple(x.shape)}")

    @torch.jit.unused
    def _materialise(self, x):
        """One unit per channel of the first input: every unit starts as the fitted one."""
        if x.dim() < 2 or not -x.dim() <= self.channel_dim < x.dim():
            raise SpecError(f"{self.family} with units per channel needs inputs with a channel dim "
                            f"{self.channel_dim}, got shape {tuple(x.shape)}")
        self._grow(int(x.shape[self.channel_dim]))

    def _grow(self, width: int) -> None:
        self.lazy_units = False
        if self.groups:  # the (G, ...) tensors stay; _per_channel repeats them to the width
            check_groups(self.groups, width)
            self.n_units = width
            return
        if width == self.n_units:
            return
        for name, dim in self.unit_tensors.items():
            t = getattr(self, name, None)
            if t is None:
                continue
            grown = t.detach().repeat_interleave(width, dim=dim)  # the same Parameter object keeps its optimiser
            if isinstance(t, nn.Parameter):
                t.data = grown
            else:
                self._buffers[name] = grown
        self.n_units = width

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        """A module whose units are made on the first input takes their number from a state_dict too
        (not grouped ones: their (G, ...) tensors do not tell the channel count)."""
        if self.lazy_units and not self.groups:
            for name, dim in self.unit_tensors.items():
                t = state_dict.get(prefix + name)
                if t is not None and getattr(self, name, None) is not None:
                    if t.shape[dim] != 1:
                        self._grow(int(t.shape[dim]))
                    break
        super()._load_from_state_dict(state_dict, prefix, *args)

    def fit_error(self) -> dict[str, float]:
        """Max abs and RMS error of the initial fit on ``init_range`` (empty without a fit)."""
        return dict(self.init_error)

    def curve(self, xs: Tensor) -> Tensor:
        """Values on 1-D ``xs``: (C, len) for per-unit parameters, (G, len) for groups, else (len,).

        Evaluated in eval mode, so that a curve never updates running statistics, and
        without fixing a lazy module's width (it is evaluated at its current units).
        """
        was_training, lazy = self.training, self.lazy_units
        self.eval()
        self.lazy_units = False
        try:
            with torch.no_grad():
                y = ungrid(self(unit_grid(xs, self.n_units)), self.n_units)
            return y[:: self.n_units // self.groups] if 1 < self.groups < self.n_units else y
        finally:
            self.train(was_training)
            self.lazy_units = lazy

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

    def _units_repr(self) -> str:
        return f"units={self.n_units}" + (f", groups={self.groups}" if self.groups else "")

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
