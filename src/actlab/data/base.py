"""What every dataset loader returns: deterministic train/val/test tensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from actlab._registry import Registry
from actlab.errors import ActlabError


@dataclass
class Split:
    x: Tensor  # float32, (N, *input_shape)
    y: Tensor  # int64 class labels in [0, num_classes)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DatasetSplits:
    name: str  # registry name, e.g. "mnist10k"
    description: str  # honest name for tables, e.g. "MNIST-10k (official test split, re-split 8k/1k/1k)"
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


Loader = Callable[..., DatasetSplits]
# Fixed seed of every split of a fixed dataset: the training seed changes
# initialisation and shuffling, never which rows are train, val or test.
SPLIT_SEED = 0
DATASETS: Registry[Loader] = Registry("dataset")


def fresh(split: Split) -> Split:
    """A copy of a cached split, so that callers cannot change the cache."""
    return Split(split.x.clone(), split.y.clone())


def take(x: Tensor, y: Tensor, idx: Tensor) -> Split:
    """The rows ``idx`` as a Split of its own (copies, so splits share no storage)."""
    return Split(x[idx].contiguous(), y[idx].contiguous())


def _stratified_holdout(labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(kept, held)``: exactly ``size`` held, each class in proportion to its count.

    Per-class quotas are rounded by largest remainder, so the total is exact
    and no class is over- or under-represented by more than one row.
    """
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = size * counts / len(labels)
    per_class = np.floor(quota).astype(np.int64)
    by_remainder = np.argsort(-(quota - per_class), kind="stable")
    per_class[by_remainder[: size - per_class.sum()]] += 1
    held = np.zeros(len(labels), dtype=bool)
    for c, k in enumerate(per_class):
        held[rng.permutation(np.flatnonzero(inverse == c))[:k]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def stratified_parts(y: Tensor, held_out: tuple[int, ...], seed: int) -> tuple[Tensor, ...]:
    """Indices ``(rest, part_1, ..., part_k)`` where part i has exactly ``held_out[i]`` rows.

    Each part is stratified by label and every index list is shuffled; the
    same seed gives the same indices. numpy only: this is on the path of
    every shipped dataset, and importing scikit-learn for ``train_test_split``
    costs over a second.
    """
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    rest = np.arange(len(labels))
    parts = []
    for size in held_out:
        kept, held = _stratified_holdout(labels[rest], size, rng)
        parts.append(rest[held])
        rest = rest[kept]
    return tuple(torch.as_tensor(rng.permutation(i)) for i in (rest, *parts))


def fraction_split(
    y: Tensor, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = SPLIT_SEED
) -> tuple[Tensor, Tensor, Tensor]:
    """Stratified train/val/test indices; val and test get round(fraction * n) rows."""
    n = len(y)
    train, val, test = stratified_parts(y, (round(fractions[1] * n), round(fractions[2] * n)), seed)
    return train, val, test


def holdout_split(y: Tensor, size: int, seed: int = SPLIT_SEED) -> tuple[Tensor, Tensor]:
    """Indices ``(rest, held_out)`` with ``size`` rows held out, stratified by label.

    Carves a validation slice out of an official training set.
    """
    n = len(y)
    if not 0 < size < n:
        raise ActlabError(f"val_size={size} must be between 1 and {n - 1} (the training set has {n} rows)")
    rest, held = stratified_parts(y, (size,), seed)
    return rest, held


def standardised_splits(
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    prepare: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[Split, Split, Split]:
    """Stratified split of tabular data, then preprocessing fitted on train rows only.

    ``prepare(x, train_idx)`` turns raw columns into numeric features using
    statistics of the train rows alone (e.g. imputing a median); every column
    is then standardised with the train mean and std. Val and test rows never
    influence any statistic, so their scores are honest.
    """
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    train_idx, val_idx, test_idx = fraction_split(y_t, fractions, seed)
    features = prepare(x, train_idx.numpy()) if prepare is not None else np.asarray(x, dtype=np.float64)
    mean = features[train_idx.numpy()].mean(axis=0)
    std = features[train_idx.numpy()].std(axis=0)
    # A column constant on train carries no information; centring it to 0 is
    # enough, dividing by its zero std would not be.
    std[std == 0] = 1.0
    z = torch.as_tensor((features - mean) / std, dtype=torch.float32)
    return take(z, y_t, train_idx), take(z, y_t, val_idx), take(z, y_t, test_idx)


def int_option(name: str, value: object, minimum: int) -> int:
    """A dataset option that must be an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ActlabError(f"dataset option {name}={value!r} must be an integer >= {minimum}")
    return value


def float_option(name: str, value: object, minimum: float) -> float:
    """A dataset option that must be a number >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ActlabError(f"dataset option {name}={value!r} must be a number >= {minimum}")
    return float(value)
