"""Helpers shared by the dataset tests."""

from __future__ import annotations

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
