"""The CNN of the convexity-annealing experiments (ecotner/ConvexityAnnealing).

conv 16@4x4 -> conv 16@3x3 -> conv 16@3x3 (valid padding), an optional 2x2
max-pool after the last convolution, and a dense head whose logits go to the
softmax cross-entropy. Each convolution is followed by its own activation site.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from actlab.activations.sites import Site
from actlab.errors import ActlabError
from actlab.models.factory import MODELS


class CNN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, act: Callable[[Site], nn.Module],
                 channels: int = 16, pool: bool = True):
        super().__init__()
        in_ch = input_shape[0] if len(input_shape) == 3 else 1
        self.convs = nn.ModuleList([
            nn.Conv2d(in_ch, channels, 4),
            nn.Conv2d(channels, channels, 3),
            nn.Conv2d(channels, channels, 3),
        ])
        self.acts = nn.ModuleList([act(Site(channels, "conv", i)) for i in range(3)])
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        with torch.no_grad():
            flat = self._features(torch.zeros(1, in_ch, *input_shape[-2:])).shape[1]
        self.head = nn.Linear(flat, num_classes)

    def _features(self, x: Tensor) -> Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return self.pool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self._features(x))


@MODELS.register("cnn")
def cnn(input_shape: tuple[int, ...], num_classes: int, act: Callable[[Site], nn.Module],
        channels: int = 16, pool: bool = True) -> nn.Module:
    # three valid convolutions take 7 pixels off each side; the 2x2 pool needs 2 left
    need = 9 if pool else 8
    if len(input_shape) not in (2, 3) or min(input_shape[-2:]) < need:
        hint = "; cnn(pool=false) takes 8x8 (digits)" if pool else ""
        raise ActlabError(f"cnn needs image inputs of at least {need}x{need}, got shape {tuple(input_shape)}{hint}")
    return CNN(input_shape, num_classes, act, int(channels), bool(pool))
