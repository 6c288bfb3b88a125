"""Fisher information spectra at initialisation, by K-FAC, as search features.

Bingham & Miikkulainen (NeurIPS 2023, https://arxiv.org/abs/2301.05785) find
that the eigenvalue spectrum of a model's Fisher information matrix at
initialisation predicts how well an activation function trains. Each layer's
Fisher block is approximated by K-FAC (Martens & Grosse 2015; Grosse & Martens
2016 for convolutions) as ``kron(A, G)``:

* ``A = mean over examples and locations of a a^T``, ``a`` the layer input
  (a conv patch from ``F.unfold``) with a ones entry appended when the layer
  has a bias;
* ``G = mean over examples of sum over locations of g g^T``, ``g`` the gradient
  of ``-log p(y|x)`` with respect to the layer output.

For a linear layer and one example, ``kron(A, G)`` is the exact Fisher block (the
per-example weight gradient is ``g a^T``); a test checks this. The eigenvalues
of ``kron(A, G)`` are the products ``l_A_i * l_G_j``, so the log spectrum is the
set of pairwise sums of log eigenvalues, summarised as a CDF on fixed bins.

Labels follow the K-FAC convention: sampled from the model's own predictive
distribution (the "true" Fisher) with a seeded generator; ``labels="empirical"``
uses the given ``y`` instead (the empirical Fisher). The model runs in whatever
mode it is in; with batch norm in training mode examples are coupled and ``g``
is only approximately per-example, so put such models in eval mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab.errors import ActlabError


@dataclass
class KFACFactors:
    """The two Kronecker factors of one layer's Fisher block."""

    name: str
    A: Tensor  # (d_in [+1], d_in [+1])
    G: Tensor  # (d_out, d_out)


def _patches(layer: nn.Module, inp: Tensor) -> Tensor:
    """Layer inputs as (N, L, d_in): L locations per example."""
    if isinstance(layer, nn.Linear):
        return inp.reshape(inp.shape[0], -1, inp.shape[-1])
    if layer.groups != 1 or isinstance(layer.padding, str) and layer.padding != "valid":
        raise ActlabError(f"K-FAC supports Conv2d with groups=1 and numeric padding, got {layer}")
    if layer.padding_mode != "zeros":
        raise ActlabError(f"K-FAC supports Conv2d with zero padding only, got {layer}")
    padding = 0 if layer.padding == "valid" else layer.padding
    cols = F.unfold(inp, layer.kernel_size, layer.dilation, padding, layer.stride)
    return cols.transpose(1, 2)


def _out_grads(layer: nn.Module, grad: Tensor) -> Tensor:
    """Output gradients as (N, L, d_out), locations matching :func:`_patches`."""
    if isinstance(layer, nn.Linear):
        return grad.reshape(grad.shape[0], -1, grad.shape[-1])
    return grad.flatten(2).transpose(1, 2)


def _layer_rows(
    model: nn.Module, x: Tensor, y: Tensor | None, labels: str, seed: int
) -> list[tuple[str, Tensor, Tensor]]:
    """Per layer, matrices ``a`` and ``g`` with ``A = a^T a`` and ``G = g^T g`` (float64)."""
    if labels not in ("sampled", "empirical"):
        raise ActlabError(f"labels must be 'sampled' or 'empirical', got {labels!r}")
    if labels == "empirical" and y is None:
        raise ActlabError("labels='empirical' needs the targets y")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ActlabError("the model has no nn.Linear or nn.Conv2d layer to take a Fisher spectrum of")
    seen: dict[str, tuple[Tensor, Tensor]] = {}

    def hook(name: str):
        def save(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            if name in seen:
                raise ActlabError(f"layer {name} is called twice in one forward pass; K-FAC needs one call")
            seen[name] = (inputs[0].detach(), output)

        return save

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    try:
        logits = model(x.detach().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    if logits.dim() != 2:
        raise ActlabError(f"the model must return (batch, classes) logits, got shape {tuple(logits.shape)}")
    if labels == "sampled":
        gen = torch.Generator().manual_seed(seed)
        probs = torch.softmax(logits.detach().double(), dim=1).nan_to_num(1.0 / logits.shape[1])
        y = torch.multinomial(probs, 1, generator=gen).squeeze(1)
    loss = F.cross_entropy(logits, y, reduction="sum")  # sum: gradients stay per example
    used = [(n, m) for n, m in layers if n in seen]
    grads = torch.autograd.grad(loss, [seen[n][1] for n, _ in used], allow_unused=True)
    rows = []
    for (name, layer), grad in zip(used, grads):
        a = _patches(layer, seen[name][0]).double()
        if layer.bias is not None:
            a = torch.cat([a, a.new_ones(*a.shape[:2], 1)], dim=2)
        g = _out_grads(layer, grad if grad is not None else torch.zeros_like(seen[name][1])).double()
        n, locs = a.shape[:2]
        rows.append((name, a.flatten(0, 1) / (n * locs) ** 0.5, g.flatten(0, 1) / n**0.5))
    return rows


def kfac_factors(
    model: nn.Module, x: Tensor, y: Tensor | None = None, *, labels: str = "sampled", seed: int = 0
) -> list[KFACFactors]:
    """K-FAC factors of every ``nn.Linear``/``nn.Conv2d`` of ``model`` on the batch ``x``."""
    return [KFACFactors(name, a.T @ a, g.T @ g) for name, a, g in _layer_rows(model, x, y, labels, seed)]


def _gram_eigvalsh(m: Tensor) -> Tensor:
    """Eigenvalues of ``m^T m``; through the smaller Gram matrix ``m m^T`` when m is wide.

    A wide layer seen on a small batch (a 3137-input linear layer on 64 examples)
    has a rank-64 factor: 64 eigenvalues from a 64x64 problem, the rest zero.
    """
    rows, cols = m.shape
    if rows >= cols:
        return torch.linalg.eigvalsh(m.T @ m)
    return torch.cat([torch.linalg.eigvalsh(m @ m.T), m.new_zeros(cols - rows)])


def kfac_log_spectrum(A: Tensor, G: Tensor, eps: float = 1e-12) -> Tensor:
    """Log eigenvalues of ``kron(A, G)``: all sums ``log l_A_i + log l_G_j``, clamped below at ``log eps``."""
    return _log_pairwise(torch.linalg.eigvalsh(A.double()), torch.linalg.eigvalsh(G.double()), eps)


def _log_pairwise(ea: Tensor, eg: Tensor, eps: float) -> Tensor:
    floor = math.log(eps)  # eigenvalues of a PSD factor can come out 0 or slightly negative
    la, lg = ea.clamp(min=eps).log(), eg.clamp(min=eps).log()
    return (la[:, None] + lg[None, :]).flatten().clamp(min=floor)


def spectrum_cdf(log_eigs: Tensor, bins: int, range: tuple[float, float]) -> np.ndarray:
    """Fraction of log eigenvalues at or below each right bin edge.

    Values outside ``range`` count in the end bins, so every CDF ends at 1.
    """
    lo, hi = range
    counts, _ = np.histogram(np.clip(log_eigs.numpy(), lo, hi), bins=bins, range=(lo, hi))
    return np.cumsum(counts) / max(len(log_eigs), 1)


def fisher_features(
    model: nn.Module,
    x: Tensor,
    y: Tensor | None = None,
    *,
    labels: str = "sampled",
    seed: int = 0,
    bins: int = 40,
    range: tuple[float, float] = (-28.0, 4.0),
    eps: float = 1e-12,
) -> np.ndarray:
    """Per-layer CDFs of the K-FAC log Fisher spectrum, concatenated: shape (layers * bins,).

    The default range spans ``log(1e-12) ~ -27.6`` (the clamp) to ``e^4 ~ 55``.
    A layer whose factors are not finite (the activation overflowed) counts
    all its mass in the top bin.
    """
    if bins < 1 or not range[0] < range[1]:
        raise ActlabError(f"need bins >= 1 and range[0] < range[1], got bins={bins}, range={range}")
    parts = []
    for _, a, g in _layer_rows(model, x, y, labels, seed):
        if torch.isfinite(a).all() and torch.isfinite(g).all():
            log_eigs = _log_pairwise(_gram_eigvalsh(a), _gram_eigvalsh(g), eps)
            parts.append(spectrum_cdf(log_eigs, bins, range))
        else:
            parts.append(np.eye(1, bins, bins - 1).ravel())
    return np.concatenate(parts)
