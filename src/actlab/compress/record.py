"""Recording what an activation sees: a bounded uniform sample of its inputs.

Calibration data may hold millions of activation inputs per layer, so we keep
a uniform sample without replacement (bottom-k sampling: every input column
gets a random key and we keep the ``max_samples`` smallest keys), which is
exact, needs memory proportional to ``max_samples`` only, and is reproducible
from its seed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab import _devices
from actlab.errors import ActlabError


class InputSample:
    """A uniform sample of an activation's inputs, kept per channel (dim 1).

    A "column" is one position of the input tensor apart from dim 1, so a
    sample column holds the values every channel saw at the same place. The
    sample is ``values`` of shape (C, n); inputs of ndim < 2 count as C = 1.
    """

    def __init__(self, max_samples: int = 20_000, seed: int = 0, dim: int = 1) -> None:
        if max_samples < 1:
            raise ActlabError(f"max_samples must be at least 1, got {max_samples}")
        self.max_samples = max_samples
        self.dim = dim  # where the channels are: an activation with channel_dim=-1 sees (B, T, D)
        self._gen = torch.Generator().manual_seed(seed)
        self._values: Tensor | None = None
        self._keys: Tensor | None = None
        self.ndim: int | None = None
        self.width: int | None = None
        self.count = 0  # columns seen in total

    def add(self, x: Tensor) -> None:
        x = x.detach().to("cpu", torch.float32)
        if self.dim != 1 and x.ndim > 2:  # channels elsewhere: as (n, C), the layout the module takes too
            x = x.movedim(self.dim, -1).reshape(-1, x.shape[self.dim])
        cols = x.reshape(1, -1) if x.ndim < 2 else x.transpose(0, 1).reshape(x.shape[1], -1)
        if self.width is not None and cols.shape[0] != self.width:
            raise ActlabError(
                f"an activation module saw inputs of width {self.width} and {cols.shape[0]}; "
                "share one module only between sites of the same width, or compress with skip="
            )
        self.ndim, self.width = max(x.ndim, 1), cols.shape[0]
        self.count += cols.shape[1]
        keys = torch.rand(cols.shape[1], generator=self._gen)
        if self._keys is not None:
            cols = torch.cat([self._values, cols], dim=1)
            keys = torch.cat([self._keys, keys])
        if keys.numel() > self.max_samples:
            keys, keep = torch.topk(keys, self.max_samples, largest=False)
            cols = cols[:, keep]
        self._values, self._keys = cols, keys

    @property
    def values(self) -> Tensor:
        if self._values is None:
            raise ActlabError("no activation inputs were recorded: the calibration data is empty")
        return self._values


def record_inputs(
    model: nn.Module,
    sites: dict[str, nn.Module],
    batches: list[Tensor],
    max_samples: int = 20_000,
    seed: int = 0,
) -> dict[str, InputSample]:
    """Run ``model`` on ``batches`` and sample the inputs of each module in ``sites``.

    A module used at several places in the model (a shared instance) pools
    the inputs of all its uses. Batches run on the model's device, one at a time.
    """
    samples: dict[str, InputSample] = {}
    by_module: dict[int, InputSample] = {}
    handles = []
    for name, module in sites.items():
        if id(module) not in by_module:
            by_module[id(module)] = InputSample(max_samples, seed, getattr(module, "channel_dim", 1))
            # a pre-hook: an inplace activation has already overwritten its input when a forward hook runs
            handles.append(module.register_forward_pre_hook(_hook(by_module[id(module)])))
        samples[name] = by_module[id(module)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                model(batch.to(_devices.of(model, default=batch.device)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return samples


def _hook(sample: InputSample):
    def hook(module: nn.Module, inputs: tuple) -> None:
        sample.add(inputs[0].detach().clone())  # a copy: an inplace module overwrites it next

    return hook
