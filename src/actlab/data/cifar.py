"""CIFAR-10 from the user's ``cifar-10-batches-py`` folder (the "python version")."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from actlab.data.base import DATASETS, DatasetSplits, int_option
from actlab.data.images import DEFAULT_VAL_SIZE, official_splits, require_data_dir
from actlab.data.idx import read_file
from actlab.errors import ActlabError

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# Per-channel mean and std of the pixels of the 50k CIFAR-10 training images
# (0.24703, 0.24349, 0.26159 when recomputed, e.g. MadryLab/robustness#70).
# The often-copied std (0.2023, 0.1994, 0.2010) is not the pixel std; it
# reportedly averages per-image stds (chenyaofo/image-classification-codebase#5).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
LAYOUT = (
    f"expected <data_dir>/{FOLDER}/{{data_batch_1..5,test_batch}} (data_dir may also be {FOLDER} itself); "
    "nothing is downloaded"
)

# A CIFAR batch is a dict of bytes, lists and one numpy array. Unpickling may
# run arbitrary code, so only what rebuilds those is allowed: numpy's array
# constructors (module names of numpy 1 and 2) and, for bytes pickled by
# Python 3 with protocol 2, codecs.encode.
_ALLOWED = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
    for name in ("_reconstruct", "_frombuffer", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR-10 batch never contains")


def _batch_dir(data_dir: Path) -> Path:
    if not data_dir.is_dir():
        raise ActlabError(f"data directory {data_dir} does not exist; {LAYOUT}")
    for directory in (data_dir / FOLDER, data_dir):
        if (directory / TEST_BATCH).is_file():
            return directory
    return data_dir / FOLDER  # the missing-file error names the expected location


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of one pickled CIFAR-10 batch."""
    if not path.is_file():
        raise ActlabError(f"CIFAR-10 file {path} not found; {LAYOUT}")
    try:
        # latin1: the official batches were pickled by Python 2 (numpy's advice).
        batch = _ArrayUnpickler(io.BytesIO(read_file(path)), encoding="latin1").load()
    except ActlabError:
        raise
    except Exception as exc:  # unpickling fails in many ways on a damaged file
        raise ActlabError(f"{path} is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise ActlabError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ActlabError(f"{path} is not a CIFAR-10 batch: it lacks 'data' or 'labels'")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ActlabError(f"{path} is corrupt: 'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ActlabError(f"{path} is corrupt: {len(data)} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ActlabError(f"{path} is corrupt: labels outside 0..9")
    # Rows hold the 1024 red, then green, then blue values of a 32x32 image.
    return data.reshape(-1, 3, 32, 32), labels


@DATASETS.register("cifar10")
def cifar10(*, data_dir: Path | None = None, seed: int = 0, val_size: int = DEFAULT_VAL_SIZE) -> DatasetSplits:
    """CIFAR-10 from ``data_dir``: the 5 training batches minus ``val_size`` validation images; test batch."""
    root = require_data_dir("cifar10", data_dir, LAYOUT)
    val_size = int_option("val_size", val_size, 1)
    directory = _batch_dir(root)
    parts = [read_batch(directory / name) for name in TRAIN_BATCHES]
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    test_images, test_labels = read_batch(directory / TEST_BATCH)
    train, val, test = official_splits(
        train_images, train_labels, test_images, test_labels, mean=CIFAR10_MEAN, std=CIFAR10_STD, val_size=val_size
    )
    description = f"CIFAR-10 (official train minus {val_size} validation images; official test)"
    return DatasetSplits("cifar10", description, train, val, test, 10, (3, 32, 32))
