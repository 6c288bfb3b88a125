"""A multilayer perceptron with one activation module per hidden layer."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor, nn

from actlab.activations.sites import Site
from actlab.models.factory import MODELS


class MLP(nn.Module):
    def __init__(self, in_features: int, widths: list[int], num_classes: int, act: Callable[[Site], nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList()
        self.acts = nn.ModuleList()
        prev = in_features
        for i, width in enumerate(widths):
            self.layers.append(nn.Linear(prev, width))
            self.acts.append(act(Site(width, "dense", i)))
            prev = width
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer, act in zip(self.layers, self.acts):
            x = act(layer(x))
        return self.head(x)  # logits; softmax lives in the cross-entropy loss


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, act: Callable[[Site], nn.Module],
        widths: list[int] | int = (64, 64)) -> nn.Module:
    widths = [widths] if isinstance(widths, int) else list(widths)
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be positive integers, got {widths}")
    return MLP(math.prod(input_shape), [int(w) for w in widths], num_classes, act)
