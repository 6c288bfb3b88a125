"""Replaying searches on a benchmark table, at no training cost.

Given every function's score (e.g. validation accuracy from a benchmark such as
the paper's Act-Bench) and features, a search only looks scores up. Surrogate
search (Bingham & Miikkulainen, NeurIPS 2023, https://arxiv.org/abs/2301.05785)
evaluates the baselines first, then repeatedly fits the surrogate on what it has
evaluated and evaluates the unevaluated function it predicts best; random search
evaluates the same baselines, then the rest in random order. Both are repeated
over seeds; the result holds best-so-far curves and how many evaluations each
run needed to reach the top fraction of the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from actlab.errors import ActlabError
from actlab.search.space import SearchSpace
from actlab.search.surrogate import FeatureInput, make_surrogate

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not with actlab
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BASELINES = ("elu", "relu", "selu", "sigmoid", "softplus", "softsign", "swish", "tanh")


def baseline_indices(space: SearchSpace, names: Sequence[str] = BASELINES) -> list[int]:
    """Rows of ``space.unique`` holding the baselines (``relu`` is found as, e.g., ``abs(relu(x))``)."""
    rows = []
    for name in names:
        rep = space.find(name)
        if rep is None:
            raise ActlabError(f"baseline {name!r} is not in the search space (or not finite on its inputs)")
        rows.append(space.index(rep))
    return rows


def _check_start(n: int, start: Sequence[int]) -> list[int]:
    start = [int(i) for i in start]
    if len(set(start)) != len(start) or any(not 0 <= i < n for i in start):
        raise ActlabError(f"start indices must be distinct and lie in [0, {n}), got {start}")
    return start


def random_order(n: int, start: Sequence[int], seed: int) -> np.ndarray:
    """The start indices, then every other index in a seeded random order."""
    start = _check_start(n, start)
    rest = np.setdiff1d(np.arange(n), start)
    return np.concatenate([np.asarray(start, dtype=np.int64), np.random.default_rng(seed).permutation(rest)])


def surrogate_order(features: FeatureInput, scores: np.ndarray, start: Sequence[int], budget: int, *,
                    surrogate: str = "umap_knn", seed: int = 0, epsilon: float = 0.0,
                    **surrogate_kwargs: object) -> np.ndarray:
    """Indices in the order a surrogate search evaluates them, ``budget`` in all.

    With probability ``epsilon`` a step evaluates a random unevaluated function
    instead (epsilon-greedy exploration); ties among the best predictions are
    broken at random, both from ``seed``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = _check_start(len(scores), start)
    if not 0.0 <= epsilon <= 1.0:
        raise ActlabError(f"epsilon must lie in [0, 1], got {epsilon}")
    rng = np.random.default_rng(seed)
    model = make_surrogate(surrogate, seed=seed, **surrogate_kwargs)
    todo = np.ones(len(scores), dtype=bool)
    todo[order] = False
    while len(order) < min(budget, len(scores)):
        candidates = np.flatnonzero(todo)
        if rng.random() < epsilon:
            pick = int(rng.choice(candidates))
        else:
            pred = model.fit(features, order, scores[order]).predict(candidates)
            pick = int(rng.choice(candidates[pred == pred.max()]))
        order.append(pick)
        todo[pick] = False
    return np.asarray(order[:budget], dtype=np.int64)


def top_threshold(scores: np.ndarray, top_frac: float = 0.01) -> float:
    """The score a function needs to be among the best ``ceil(top_frac * n)``."""
    if not 0.0 < top_frac <= 1.0:
        raise ActlabError(f"top_frac must lie in (0, 1], got {top_frac}")
    m = max(1, math.ceil(top_frac * len(scores)))
    return float(np.sort(np.asarray(scores))[::-1][m - 1])


def best_so_far(scores: np.ndarray, order: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(scores)[order])


def evals_to_reach(scores: np.ndarray, order: np.ndarray, threshold: float) -> float:
    """How many evaluations (baselines included) until a score >= threshold; inf if never."""
    hits = np.flatnonzero(np.asarray(scores)[order] >= threshold)
    return float(hits[0] + 1) if len(hits) else math.inf


@dataclass
class Curves:
    """One strategy's runs: best-so-far per seed and evaluations needed to reach the top."""

    best: np.ndarray  # (seeds, budget)
    evals_to_top: np.ndarray  # (seeds,), inf where the top was not reached within the budget

    @property
    def mean(self) -> np.ndarray:
        return self.best.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        return self.best.std(axis=0)

    def summary(self) -> dict[str, float]:
        e = self.evals_to_top
        return {"mean_evals_to_top": float(e.mean()), "median_evals_to_top": float(np.median(e)),
                "found_frac": float(np.isfinite(e).mean())}


@dataclass
class ReplayResult:
    surrogate: Curves
    random: Curves
    threshold: float
    top_frac: float


def replay(features: FeatureInput, scores: Sequence[float], start: Sequence[int], *,
           budget: int | None = None, seeds: Iterable[int] = range(5), surrogate: str = "umap_knn",
           epsilon: float = 0.0, top_frac: float = 0.01, **surrogate_kwargs: object) -> ReplayResult:
    """Surrogate vs random search over ``seeds``, each ``budget`` evaluations long (default: all)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ActlabError("scores must be a 1-D array of finite numbers (give failed functions a low score)")
    budget = len(scores) if budget is None else budget
    if not len(start) <= budget <= len(scores):
        raise ActlabError(f"budget must lie in [{len(start)}, {len(scores)}], got {budget}")
    threshold = top_threshold(scores, top_frac)
    runs: dict[str, list[tuple[np.ndarray, float]]] = {"surrogate": [], "random": []}
    for seed in seeds:
        s_order = surrogate_order(features, scores, start, budget, surrogate=surrogate, seed=seed,
                                  epsilon=epsilon, **surrogate_kwargs)
        r_order = random_order(len(scores), start, seed)  # complete, so its count is always finite
        runs["surrogate"].append((best_so_far(scores, s_order), evals_to_reach(scores, s_order, threshold)))
        r_count = evals_to_reach(scores, r_order, threshold)
        runs["random"].append((best_so_far(scores, r_order[:budget]), r_count))
    if not runs["random"]:
        raise ActlabError("replay needs at least one seed")
    curves = {k: Curves(np.stack([b for b, _ in v]), np.array([e for _, e in v])) for k, v in runs.items()}
    return ReplayResult(curves["surrogate"], curves["random"], threshold, top_frac)


def plot_replay(result: ReplayResult, ax: Axes | None = None) -> Figure:
    """Best-so-far score against evaluations, mean +- std over seeds, with the top-fraction line."""
    if ax is None:
        from matplotlib.figure import Figure  # here: import actlab must not load matplotlib

        ax = Figure(figsize=(5, 3.5)).subplots()
    for label, c in (("surrogate", result.surrogate), ("random", result.random)):
        steps = np.arange(1, c.best.shape[1] + 1)
        (line,) = ax.plot(steps, c.mean, label=f"{label} search")
        ax.fill_between(steps, c.mean - c.std, c.mean + c.std, color=line.get_color(), alpha=0.2)
    ax.axhline(result.threshold, color="gray", linestyle="--", label=f"top {result.top_frac:.0%}")
    ax.set_xlabel("functions evaluated")
    ax.set_ylabel("best score so far")
    ax.legend()
    return ax.figure
