"""Parameter sharing: one parameter set per layer, per channel, per neuron or per group.

A learnable activation keeps its parameters as ``(C, ...)`` tensors, ``C = 1``
for ``sharing=layer``. Channels (conv sites) and neurons (dense sites) both
live on dim 1 of the activation tensor, so the two modes are the same code;
the name only documents intent. ``dim=-1`` (or any dim) puts the channels
elsewhere, as in a transformer's (B, T, D); the module moves them to dim 1
(a free reshape when they are last). Without a ``Site`` the width is taken
from the first input, and each unit starts as the fitted one. A column ``p[:, k]`` is viewed as
``(C, 1, ..., 1)`` to broadcast against ``(N, C, ...)`` inputs of any rank, or
as a 0-d tensor for ``C = 1`` so that layer sharing accepts any shape.

``sharing=group`` with ``groups=G`` is GR-KAN's grouping (Yang & Wang 2024,
"Kolmogorov-Arnold Transformer", https://arxiv.org/abs/2409.10594): G contiguous
groups of C/G channels with one parameter set each, held as ``(G, ...)`` tensors
and repeated to ``(C, ...)`` per call, so that every kernel sees per-channel
parameters and each group's gradient is the sum over its channels. ``groups=1``
is layer sharing; ``groups=C`` is channel sharing. Without a ``Site``, C comes
from the first input.
"""

from __future__ import annotations

import torch
from torch import Tensor

from actlab._registry import unknown_name_message
from actlab.activations.sites import Site
from actlab.errors import SpecError, UnknownNameError

SHARING_MODES = ("layer", "channel", "neuron", "group")


def units(sharing: str, site: Site | None, groups: int | None = None) -> int:
    """How many parameter sets a site needs under ``sharing``: G for ``sharing=group``."""
    if sharing not in SHARING_MODES:
        raise UnknownNameError(unknown_name_message("sharing mode", str(sharing), list(SHARING_MODES)))
    if sharing != "group":
        if groups is not None:
            raise SpecError(f"groups={groups!r} needs sharing=group, got sharing={sharing}")
        if sharing == "layer" or site is None:  # without a site: made on the first input (lazy units)
            return 1
        return int(site.num_features)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise SpecError(f"sharing=group needs groups=G, a positive integer (the parameter sets), got {groups!r}")
    if site is not None:
        check_groups(groups, int(site.num_features))
    return groups


def check_groups(groups: int, width: int) -> None:
    """G groups of C/G contiguous channels need G to divide C."""
    if width % groups:
        raise SpecError(f"sharing=group needs groups to divide the channels: groups={groups} "
                        f"does not divide {width} channels")


def bcast(col: Tensor, x: Tensor) -> Tensor:
    """View a per-unit column ``(C,)`` so that it broadcasts against ``x`` (N, C, ...)."""
    if col.numel() == 1:
        return col.reshape(())
    return col.reshape([col.shape[0]] + [1] * (x.dim() - 2))


def reduce_units(t: Tensor, n_units: int) -> Tensor:
    """Sum ``t`` (N, C, ...) down to one value per unit, shape ``(C,)``."""
    if n_units == 1:
        return t.sum().reshape(1)
    dims = [d for d in range(t.dim()) if d != 1]
    return t.sum(dim=dims)


def reduce_product(a: Tensor, b: Tensor | float, n_units: int) -> Tensor:
    """``reduce_units(a * b)``; a dot product (no temporary) for layer sharing."""
    if isinstance(b, float):
        return reduce_units(a, n_units) * b
    if n_units == 1 and a.shape == b.shape and a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(1)
    return reduce_units(a * b, n_units)


def check_input(x: Tensor, n_units: int) -> None:
    if n_units > 1 and (x.dim() < 2 or x.shape[1] != n_units):
        raise ValueError(f"expected input with {n_units} channels on dim 1, got shape {tuple(x.shape)}")


def unit_grid(xs: Tensor, n_units: int) -> Tensor:
    """1-D points ``xs`` as an (L, C) batch, so a module evaluates every unit on them."""
    return xs.reshape(-1, 1).expand(-1, n_units) if n_units > 1 else xs.reshape(-1, 1)


def ungrid(y: Tensor, n_units: int) -> Tensor:
    """Inverse of :func:`unit_grid` for outputs: (C, L) per unit, else (L,)."""
    return y.t().contiguous() if n_units > 1 else y.reshape(-1)

