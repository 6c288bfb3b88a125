"""The two feature sets of a candidate activation function.

Bingham & Miikkulainen (NeurIPS 2023, https://arxiv.org/abs/2301.05785) describe
a function by (a) its outputs on fixed standard-normal inputs and (b) the Fisher
information spectrum of a model using it, at initialisation
(:mod:`actlab.search.fisher`). Output features are the raw outputs in input
order by default, as in the paper; ``sort=True`` gives the sorted outputs
instead, i.e. the quantile function of the output distribution, which forgets
which input produced which output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from actlab.activations.expr import compile_expression
from actlab.search.fisher import fisher_features
from actlab.search.space import _pad, expression_node, probe_inputs


@dataclass
class Features:
    """Both feature sets for ``names``, one row per name."""

    names: list[str]
    outputs: np.ndarray  # (len(names), num_inputs)
    fisher: np.ndarray  # (len(names), layers * bins)

    def blocks(self) -> list[np.ndarray]:
        """The feature sets as a list, the form surrogates accept."""
        return [self.outputs, self.fisher]


def output_features(outputs: Tensor | np.ndarray, sort: bool = False) -> np.ndarray:
    """Output features from a (functions, inputs) table, e.g. ``SearchSpace.outputs``."""
    out = np.asarray(outputs, dtype=np.float64)
    return np.sort(out, axis=1) if sort else out.copy()


def evaluate_expressions(names: Sequence[str], inputs: Tensor | None = None) -> Tensor:
    """Outputs of expressions on the probe inputs, bit-identical to :func:`enumerate_space`'s."""
    x = probe_inputs() if inputs is None else inputs
    xp = _pad(x)
    return torch.stack([compile_expression(expression_node(n))(xp)[: x.numel()] + 0.0 for n in names])


def build_features(
    names: Sequence[str],
    model_fn: Callable[[str], nn.Module],
    x: Tensor,
    y: Tensor | None = None,
    seed: int = 0,
    *,
    sort_outputs: bool = False,
    inputs: Tensor | None = None,
    **fisher_kwargs: object,
) -> Features:
    """Output and Fisher features for every expression in ``names``.

    ``model_fn(name)`` builds a model using the activation ``name``; it is
    called under ``torch.manual_seed(seed)`` (global RNG state is restored
    afterwards), so every function is scored on the same initial weights as far
    as the architecture allows. ``fisher_kwargs`` go to :func:`fisher_features`
    (labels, bins, range, eps); its label-sampling seed is ``seed`` too.
    """
    outputs = output_features(evaluate_expressions(names, inputs), sort=sort_outputs)
    rows = []
    for name in names:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_fn(name)
        with torch.random.fork_rng(devices=[]):
            rows.append(fisher_features(model, x, y, seed=seed, **fisher_kwargs))
    return Features(list(names), outputs, np.stack(rows) if rows else np.zeros((0, 0)))
