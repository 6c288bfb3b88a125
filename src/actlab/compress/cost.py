"""What models cost: model FLOPs per sample, stored numbers, latency.

Activations are counted by :func:`actlab.activations.flops.flops_per_element`
(the counting convention is stated there); Linear and Conv layers as 2 x MACs.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.nn.modules import conv

from actlab import _devices
from actlab.activations.flops import flops_per_element
from actlab.activations.sites import find_activations


def relu_flops() -> float:
    return 1.0


def poly_flops(degree: int) -> float:
    """A polynomial by Horner: one multiply-add per degree."""
    return 2.0 * degree


@dataclass
class ModelCost:
    """FLOPs per sample, split into layers and activations, and the parameter count."""

    flops: float
    layer_flops: float
    activation_flops: float
    params: int
    stored: int  # numbers kept at inference: parameters plus buffers (lookup tables, norm statistics)
    per_site: dict[str, float] = field(default_factory=dict)


def layer_flops(module: nn.Module, x: Tensor, y: Tensor) -> float:
    """2 x MACs (+ one add per output for the bias) of a Linear or Conv call."""
    bias = y.numel() if getattr(module, "bias", None) is not None else 0
    if isinstance(module, nn.Linear):
        return 2.0 * y.numel() * module.in_features + bias
    if isinstance(module, conv._ConvNd):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return 2.0 * y.numel() * per_output + bias
    return 0.0


def model_cost(model: nn.Module, sample: Tensor) -> ModelCost:
    """FLOPs per sample of ``model`` on ``sample`` (a batch, moved to the model's device):
    Linear/Conv layers and activation sites; other layers (norms, pooling) are not counted."""
    sites = {id(m): n for n, m in find_activations(model).items()}
    modules = {id(m): m for m in model.modules()}
    layers = [0.0]
    elements: dict[int, int] = {}
    shapes: dict[int, tuple[int, int]] = {}  # (width, ndim) of each site's input

    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        if id(module) in sites:
            x = inputs[0]
            shapes[id(module)] = (x.shape[1] if x.ndim > 1 else 1, x.ndim)
            elements[id(module)] = elements.get(id(module), 0) + output.numel()
        else:
            layers[0] += layer_flops(module, inputs[0], output)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if id(m) in sites or isinstance(m, (nn.Linear, conv._ConvNd))]
    try:
        with torch.no_grad():
            model(sample.to(_devices.of(model, default=sample.device)))
    finally:
        for h in handles:
            h.remove()
    batch = sample.shape[0]
    # counted after the forward pass: probing a module inside its own hook would recurse
    per_site = {sites[key]: flops_per_element(modules[key], *shapes[key]) * n / batch
                for key, n in elements.items()}
    acts = sum(per_site.values())
    params = sum(p.numel() for p in model.parameters())
    stored = params + sum(b.numel() for b in model.buffers())
    return ModelCost(layers[0] / batch + acts, layers[0] / batch, acts, params, stored, per_site)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], batch_sizes: tuple[int, ...] = (1, 256),
                    repeats: int = 20, warmup: int = 3) -> dict[int, float]:
    """Median seconds per forward call of ``model`` in eval mode under ``torch.inference_mode``, on
    the model's device (on CUDA each call is timed to its end: launches are asynchronous)."""
    device = _devices.of(model)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    was_training = model.training
    model.eval()
    result = {}
    try:
        with torch.inference_mode():
            for batch in batch_sizes:
                x = torch.randn(batch, *input_shape).to(device)
                for _ in range(warmup):
                    model(x)
                times = []
                for _ in range(repeats):
                    sync()
                    start = time.perf_counter()
                    model(x)
                    sync()
                    times.append(time.perf_counter() - start)
                result[batch] = statistics.median(times)
    finally:
        model.train(was_training)
    return result
