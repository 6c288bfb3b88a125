"""A small pre-activation-free ResNet for 32x32 inputs (He et al. 2016, CIFAR variant).

``stages`` stages (3 by default) of ``blocks`` basic blocks with widths w, 2w, 4w, ...;
every activation site gets its own module so learnable activations can differ per
block. ``resnet(width=64,blocks=2,stages=4)`` is ResNet-18's CIFAR variant (a 3x3
stem without max-pool; 11.2M parameters for 10 classes).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from actlab.activations.sites import Site
from actlab.models.factory import MODELS


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: Callable[[Site], nn.Module], index: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = act(Site(cout, "conv", index))
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = act(Site(cout, "conv", index + 1))
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, in_ch: int, num_classes: int, act: Callable[[Site], nn.Module], width: int, blocks: int,
                 stages: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
        self.stem_act = act(Site(width, "conv", 0))
        layers, cin, site = [], width, 1
        for stage, cout in enumerate([width << k for k in range(stages)]):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(BasicBlock(cin, cout, stride, act, site))
                cin, site = cout, site + 2
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.stem_act(self.stem(x)))
        return self.head(self.pool(x).flatten(1))


@MODELS.register("resnet")
def resnet(input_shape: tuple[int, ...], num_classes: int, act: Callable[[Site], nn.Module],
           width: int = 16, blocks: int = 1, stages: int = 3) -> nn.Module:
    if len(input_shape) != 3:
        raise ValueError(f"resnet needs (channels, height, width) inputs, got {input_shape}")
    if int(width) < 1 or int(blocks) < 1 or int(stages) < 1:
        raise ValueError("width, blocks and stages must be positive")
    return ResNet(input_shape[0], num_classes, act, int(width), int(blocks), int(stages))
