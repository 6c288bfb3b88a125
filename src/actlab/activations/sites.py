"""Activation sites: where an activation sits (:class:`Site`), finding them in a model, their shapes.

Which modules are activation sites: a module whose attribute
``is_activation`` is True (the marker for activations built from other
modules, e.g. a subnetwork of Linear layers; its children are not searched),
or any leaf module that is not a structural layer (Linear, Conv, norms,
pooling, padding, Flatten, Dropout, Softmax, Embedding, recurrent layers,
containers). A module may also set ``is_activation = False`` to opt out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.modules import batchnorm, conv, dropout, padding, pooling

from actlab import _devices


@dataclass(frozen=True)
class Site:
    """Where an activation sits: its width along dim 1 and the layer kind."""

    num_features: int = 1
    kind: Literal["dense", "conv"] = "dense"
    index: int = 0


STRUCTURAL: tuple[type[nn.Module], ...] = (
    nn.Linear, nn.Bilinear, conv._ConvNd, batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm,
    nn.LocalResponseNorm, pooling._AdaptiveAvgPoolNd, pooling._AdaptiveMaxPoolNd, pooling._AvgPoolNd,
    pooling._LPPoolNd, pooling._MaxPoolNd, pooling._MaxUnpoolNd, padding._CircularPadNd,
    padding._ConstantPadNd, padding._ReflectionPadNd, padding._ReplicationPadNd, nn.Flatten, nn.Unflatten,
    dropout._DropoutNd, nn.AlphaDropout, nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d, nn.Embedding,
    nn.EmbeddingBag, nn.RNNBase, nn.MultiheadAttention, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle,
    nn.Sequential, nn.ModuleList, nn.ModuleDict,
)


def activation_sites(model: nn.Module) -> dict[str, nn.Module]:
    """Activation modules by path: those made by ``make_activation`` (marked ``is_activation``)."""
    return {name: m for name, m in model.named_modules() if getattr(m, "is_activation", False) and name}


@torch.no_grad()
def curve(module: nn.Module, xs: Tensor) -> Tensor:
    """Values of an activation on 1-D ``xs``: (C, len) for per-channel shapes, else (len,);
    evaluated on the module's device (a model on CUDA), returned on ``xs``'s."""
    at = xs.to(_devices.of(module, default=xs.device))
    if hasattr(module, "curve"):
        return module.curve(at).detach().to(xs.device)
    was_training = module.training
    module.eval()
    try:
        return module(at).detach().to(xs.device)
    finally:
        module.train(was_training)


def activation_curves(model: nn.Module, lo: float = -4.0, hi: float = 4.0, n: int = 161) -> dict:
    """JSON-ready curves of every site: ``{site: {"x": [...], "mean": [...], "lo": [...], "hi": [...]}}``."""
    xs = torch.linspace(lo, hi, n)
    out = {}
    for name, module in activation_sites(model).items():
        ys = curve(module, xs).float()
        ys = ys.reshape(-1, n)
        out[name] = {
            "x": xs.tolist(),
            "mean": ys.mean(0).tolist(),
            "lo": ys.min(0).values.tolist(),
            "hi": ys.max(0).values.tolist(),
        }
    return out


def is_activation(module: nn.Module) -> bool:
    """Whether ``module`` is an activation site (see the module docstring)."""
    marker = getattr(module, "is_activation", None)
    if marker is not None:
        return bool(marker)
    return next(module.children(), None) is None and not isinstance(module, STRUCTURAL)


def find_activations(model: nn.Module) -> dict[str, nn.Module]:
    """Activation sites by qualified name ("" when ``model`` itself is one)."""
    found: dict[str, nn.Module] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        if is_activation(module):
            found[prefix] = module
            return
        for name, child in module._modules.items():  # named_children() would hide a shared module's second use
            if child is not None:
                visit(f"{prefix}.{name}" if prefix else name, child)

    visit("", model)
    return found
