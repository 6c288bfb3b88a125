"""A black-box activation module seen as C functions of one variable.

Fitting needs the function of each channel on its own grid. An activation
maps tensors elementwise, possibly with parameters per channel along dim 1,
so we evaluate it on a probe of shape (n, C, 1, ...) whose column c holds
channel c's grid: one forward call evaluates every channel at once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.activations.sites import curve


class Target:
    """``target(xs)`` with xs of shape (C, n) returns the (C, n) float64 values.

    ``channels`` is 1 for an activation that applies one function to every
    channel; rows of xs then all go through the same function.
    """

    def __init__(self, module: nn.Module, channels: int, ndim: int = 2) -> None:
        self.module = module
        self.channels = channels
        self.ndim = max(ndim, 2)
        self.dtype = next((t.dtype for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()),
                          torch.float32)
        self.device = next((t.device for t in [*module.parameters(), *module.buffers()]), torch.device("cpu"))

    def __call__(self, xs: Tensor) -> Tensor:
        rows, n = xs.shape
        probe = xs.transpose(0, 1).to(self.device, self.dtype)
        if self.channels == 1:
            probe = probe.reshape(rows * n, 1)  # rows share one function: evaluate them as one batch
        probe = probe.reshape(*probe.shape, *([1] * (self.ndim - 2)))
        with torch.no_grad():
            out = self.module(probe)
        out = out.reshape(probe.shape[0], -1).to("cpu", torch.float64)
        if self.channels == 1:
            return out.reshape(n, rows).transpose(0, 1)
        return out.transpose(0, 1)


def per_channel_width(module: nn.Module, width: int, ndim: int) -> int:
    """How many distinct functions ``module`` applies along dim 1 at a site of ``width``.

    Prefers the module's ``curve(xs)`` (shape (C, n) means per channel; (G, n) with G
    dividing the width, groups of channels, is C functions too: compressed forms keep a
    table per channel); otherwise probes every channel with the same inputs and compares.
    """
    xs = torch.linspace(-4.0, 4.0, 33)
    if hasattr(module, "curve"):
        with torch.no_grad():
            values = curve(module, xs)  # on the module's device
        rows = values.shape[0] if values.ndim == 2 and values.shape[0] > 1 else 1
        return width if 1 < rows < width and width % rows == 0 else rows
    if width <= 1:
        return 1
    values = Target(module, width, ndim)(xs.expand(width, -1).double())
    spread = (values - values[:1]).abs().nan_to_num(0.0).max()
    scale = values.abs().nan_to_num(0.0).max()
    if bool(spread > 1e-6 * (1.0 + scale)):
        return width
    try:  # equal channels (e.g. untrained ones) of a module that still needs its full width
        Target(module, 1, ndim)(xs[None].double())
    except RuntimeError:
        return width
    return 1
