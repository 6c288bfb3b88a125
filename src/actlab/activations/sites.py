"""Finding activation sites in a model and reading their shapes."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def activation_sites(model: nn.Module) -> dict[str, nn.Module]:
    """Activation modules by path: those made by ``make_activation`` (marked ``is_activation``)."""
    return {name: m for name, m in model.named_modules() if getattr(m, "is_activation", False) and name}


@torch.no_grad()
def curve(module: nn.Module, xs: Tensor) -> Tensor:
    """Values of an activation on 1-D ``xs``: (C, len) for per-channel shapes, else (len,)."""
    if hasattr(module, "curve"):
        return module.curve(xs).detach()
    was_training = module.training
    module.eval()
    try:
        return module(xs).detach()
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
