"""Image datasets: shipped MNIST-10k and sklearn digits, user-supplied MNIST and Fashion-MNIST.

The official splits are kept where they exist (test = official test); the
validation slice always comes from the training side with split seed 0, so
every training seed sees the same data and runs stay comparable.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from actlab.data.base import (
    DATASETS,
    SPLIT_SEED,
    DatasetSplits,
    Split,
    fraction_split,
    fresh,
    holdout_split,
    int_option,
    take,
)
from actlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, layout_hint, load_idx_pair, parse_idx, read_file
from actlab.errors import ActlabError

# Mean/std of the official 60k MNIST training pixels (the values of the
# PyTorch MNIST example). mnist10k uses them too, rather than statistics of its
# own 8k train split, so inputs are scaled exactly as in the usual MNIST
# recipes and a model moves between `mnist10k` and `mnist` unchanged.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
# The same statistics of the 60k Fashion-MNIST training pixels.
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
DEFAULT_VAL_SIZE = 5000  # the customary validation slice of the 50k/60k official train sets

MNIST10K_DESCRIPTION = "MNIST-10k (official test split, re-split 8k/1k/1k)"


def normalise(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 scaled to [0, 1], then standardised per channel."""
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def official_splits(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    val_size: int,
) -> tuple[Split, Split, Split]:
    """Official train minus a stratified validation slice, official test as test."""
    y_train = torch.from_numpy(train_labels.astype(np.int64))
    rest, val = holdout_split(y_train, val_size, seed=SPLIT_SEED)
    x_train = normalise(train_images, mean, std)
    test = Split(normalise(test_images, mean, std), torch.from_numpy(test_labels.astype(np.int64)))
    return take(x_train, y_train, rest), take(x_train, y_train, val), test


def require_data_dir(name: str, data_dir: Path | None, hint: str) -> Path:
    if data_dir is None:
        raise ActlabError(f"dataset {name!r} is read from files on disk: pass --data-dir DIR (data_dir=...); {hint}")
    return Path(data_dir).expanduser()


@functools.lru_cache(maxsize=1)
def _mnist10k_splits() -> tuple[Split, Split, Split]:
    root = resources.files("actlab.data") / "files" / "mnist"
    arrays = []
    for stem, magic in (("t10k-images-idx3-ubyte.gz", IMAGES_MAGIC), ("t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)):
        source = f"actlab/data/files/mnist/{stem}"
        arrays.append(parse_idx(read_file(source, (root / stem).read_bytes()), magic=magic, source=source))
    images, labels = arrays
    x = normalise(images[:, None], MNIST_MEAN, MNIST_STD)
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx, val_idx, test_idx = fraction_split(y, (0.8, 0.1, 0.1), seed=SPLIT_SEED)
    return take(x, y, train_idx), take(x, y, val_idx), take(x, y, test_idx)


@DATASETS.register("mnist10k")
def mnist10k(*, data_dir: Path | None = None, seed: int = 0) -> DatasetSplits:
    """The 10,000 official MNIST test images shipped with actlab, re-split 8k/1k/1k.

    The offline stand-in for MNIST; ``data_dir`` and ``seed`` do not apply.
    """
    train, val, test = (fresh(s) for s in _mnist10k_splits())
    return DatasetSplits("mnist10k", MNIST10K_DESCRIPTION, train, val, test, 10, (1, 28, 28))


def _idx_dataset(
    name: str,
    folder: str,
    title: str,
    data_dir: Path | None,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    val_size: object,
) -> DatasetSplits:
    root = require_data_dir(name, data_dir, layout_hint(folder))
    val_size = int_option("val_size", val_size, 1)
    train_images, train_labels = load_idx_pair(root, folder, "train")
    test_images, test_labels = load_idx_pair(root, folder, "t10k")
    train, val, test = official_splits(
        train_images[:, None], train_labels, test_images[:, None], test_labels, mean=mean, std=std, val_size=val_size
    )
    description = f"{title} (official train minus {val_size} validation images; official test)"
    return DatasetSplits(name, description, train, val, test, 10, (1, 28, 28))


@DATASETS.register("mnist")
def mnist(*, data_dir: Path | None = None, seed: int = 0, val_size: int = DEFAULT_VAL_SIZE) -> DatasetSplits:
    """Full MNIST from ``data_dir`` (torchvision layout ``MNIST/raw``); ``val_size`` train images validate."""
    return _idx_dataset("mnist", "MNIST", "MNIST", data_dir, MNIST_MEAN, MNIST_STD, val_size)


@DATASETS.register("fashion_mnist")
def fashion_mnist(*, data_dir: Path | None = None, seed: int = 0, val_size: int = DEFAULT_VAL_SIZE) -> DatasetSplits:
    """Fashion-MNIST from ``data_dir`` (torchvision layout ``FashionMNIST/raw``)."""
    return _idx_dataset("fashion_mnist", "FashionMNIST", "Fashion-MNIST", data_dir, FASHION_MEAN, FASHION_STD, val_size)


@functools.lru_cache(maxsize=1)
def _digits_splits() -> tuple[Split, Split, Split]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    pixels, labels = load_digits(return_X_y=True)
    x = torch.from_numpy(pixels / 16.0).to(torch.float32).view(-1, 1, 8, 8)  # grey levels are 0..16
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx, val_idx, test_idx = fraction_split(y, (0.7, 0.15, 0.15), seed=SPLIT_SEED)
    return take(x, y, train_idx), take(x, y, val_idx), take(x, y, test_idx)


@DATASETS.register("digits")
def digits(*, data_dir: Path | None = None, seed: int = 0) -> DatasetSplits:
    """scikit-learn's 8x8 digits (1,797 images), scaled to [0, 1], split 70/15/15 with seed 0."""
    train, val, test = (fresh(s) for s in _digits_splits())
    description = "scikit-learn digits (UCI optical digits, 1,797 8x8 images; split 70/15/15)"
    return DatasetSplits("digits", description, train, val, test, 10, (1, 8, 8))
