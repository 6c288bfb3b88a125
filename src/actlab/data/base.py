"""What every dataset loader returns: deterministic train/val/test tensors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from actlab._registry import Registry


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
DATASETS: Registry[Loader] = Registry("dataset")


def stratified_split(
    y: Tensor, fractions: tuple[float, float, float], seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Indices of a stratified train/val/test split, the same for the same seed."""
    from sklearn.model_selection import train_test_split

    idx = torch.arange(len(y)).numpy()
    labels = y.numpy()
    train_f, val_f, test_f = fractions
    rest_f = val_f + test_f
    train_idx, rest_idx = train_test_split(idx, test_size=rest_f, stratify=labels, random_state=seed)
    val_idx, test_idx = train_test_split(
        rest_idx, test_size=test_f / rest_f, stratify=labels[rest_idx], random_state=seed
    )
    return torch.as_tensor(train_idx), torch.as_tensor(val_idx), torch.as_tensor(test_idx)
