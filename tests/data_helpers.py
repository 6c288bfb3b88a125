"""Helpers shared by the dataset tests."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import torch


def rows(a: np.ndarray) -> np.ndarray:
    """Rows of ``a`` as sorted opaque byte strings: equal results <=> equal multisets of rows."""
    a = np.ascontiguousarray(a.reshape(len(a), -1))
    return np.sort(a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel())


def unnormalise(x: torch.Tensor, mean, std) -> np.ndarray:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    pixels = ((x * s + m) * 255).numpy()
    assert np.abs(pixels - pixels.round()).max() < 1e-3  # really a uint8 value, not a near miss
    return pixels.round().astype(np.uint8)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _tiny_idx_set(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_idx_tree(raw_dir: pathlib.Path, gz: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A tiny MNIST in the torchvision layout: 30 training and 10 test images of 28x28."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    written = {"train": _tiny_idx_set(30, 1), "t10k": _tiny_idx_set(10, 2)}
    for split, (images, labels) in written.items():
        for stem, data in ((f"{split}-images-idx3-ubyte", idx_bytes(images, 2051)),
                           (f"{split}-labels-idx1-ubyte", idx_bytes(labels, 2049))):  # fmt: skip
            if gz:
                (raw_dir / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (raw_dir / stem).write_bytes(data)
    return written
