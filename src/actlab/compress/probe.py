"""Which sites are safe to compress: elementwise, shape-keeping, nonlinear functions.

Any leaf module that is not a structural layer counts as an activation site
(:func:`actlab.activations.sites.is_activation`), so a user's model offers
modules that are not activations at all: ``nn.GLU`` halves its input,
``Softmax`` mixes a row, a LayerScale multiplies by a per-channel vector.
Compression fits one function of one variable per channel, so before it we
probe each site on an input it really saw: the output must keep the shape,
changing one input element must change that output element only, and the
module must not be linear (a scale is not worth a table, and its parameters
need not lie on dim 1, where compression expects them).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab import _devices

PROBES = 4  # input elements perturbed one at a time; a mixing module fails on the first


def _call(module: nn.Module, x: Tensor) -> Tensor | None:
    out = module(x.clone())  # clone: an inplace module must not alter the probe
    return out if isinstance(out, Tensor) else None


@torch.no_grad()
def not_elementwise(module: nn.Module, x: Tensor, seed: int = 0) -> str | None:
    """Why ``module`` cannot be compressed, probed on its input ``x``; None when it can."""
    was_training = module.training
    module.eval()
    try:
        return _check(module, x.detach()[:2], seed)
    except Exception as exc:  # noqa: BLE001  (a module that fails on its own input is not compressible)
        return f"fails on its inputs ({type(exc).__name__})"
    finally:
        module.train(was_training)


def _check(module: nn.Module, x: Tensor, seed: int) -> str | None:
    if not x.is_floating_point() or x.numel() == 0:
        return "its input is not a floating-point tensor"
    # the probes below are contiguous; so is the base, or a channels_last input (timm's ConvNeXt)
    # could take another kernel path and differ everywhere by rounding
    x = x.contiguous()
    base = _call(module, x)
    if base is None:
        return "returns no single tensor"
    if base.shape != x.shape:
        return f"changes the shape {tuple(x.shape)} -> {tuple(base.shape)}"
    gen = torch.Generator().manual_seed(seed)
    flat = x.reshape(-1)
    for i in torch.randperm(flat.numel(), generator=gen)[:PROBES].tolist():
        moved = flat.clone()
        moved[i] += 0.5 + 0.5 * moved[i].abs()
        out = _call(module, moved.reshape(x.shape))
        changed = ((out != base) & ~(out.isnan() & base.isnan())).reshape(-1)
        changed[i] = False
        if bool(changed.any()):
            return "not elementwise (one input element changes other outputs)"
    scaled = _call(module, 2.0 * x)
    if torch.allclose(scaled, 2.0 * base, rtol=1e-4, atol=1e-6) and torch.allclose(
            _call(module, -x), -base, rtol=1e-4, atol=1e-6):
        return "linear (a scale or identity, not an activation)"
    return None


def first_inputs(model: nn.Module, sites: dict[str, nn.Module], batch: Tensor) -> dict[str, Tensor]:
    """The input each site module sees first when ``model`` runs on ``batch`` (before any inplace change),
    run on the model's device."""
    seen: dict[int, Tensor] = {}
    handles = []
    for module in {id(m): m for m in sites.values()}.values():
        def hook(mod: nn.Module, inputs: tuple) -> None:
            if id(mod) not in seen and inputs and isinstance(inputs[0], Tensor):
                seen[id(mod)] = inputs[0].detach()[:2].clone()

        handles.append(module.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(batch.to(_devices.of(model, default=batch.device)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {name: seen[id(m)] for name, m in sites.items() if id(m) in seen}
