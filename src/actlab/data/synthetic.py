"""Generated 2-D binary problems: two interleaved spirals and two moons.

Unlike the shipped datasets, ``seed`` here draws the points (and the split),
so repeating a run over seeds also varies the sample. Both are split 70/15/15
and standardised with train statistics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actlab.data.base import DATASETS, DatasetSplits, float_option, int_option, standardised_splits

MIN_SAMPLES = 20  # each 15% slice then holds >= 3 points, enough to stratify two classes
TURNS = 1.5  # how often each arm winds around the centre


def two_spirals(n_samples: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points on the arms r = t, angle t (t in [0, 3*pi]), the second arm turned by 180 degrees.

    At a given angle the two arms lie pi (about 3.14) apart in radius, so
    ``noise`` — the std of isotropic Gaussian jitter — is measured against
    that gap: 0.5 leaves the classes separable but makes the boundary hard
    to fit with few units.
    """
    # sqrt: t then has density ~ t, i.e. roughly uniform per unit arc length,
    # instead of crowding the points near the centre
    t = np.sqrt(rng.uniform(size=n_samples)) * (2 * np.pi * TURNS)
    labels = (np.arange(n_samples) >= n_samples // 2).astype(np.int64)
    sign = np.where(labels == 1, -1.0, 1.0)[:, None]
    points = sign * np.column_stack([t * np.cos(t), t * np.sin(t)])
    return points + rng.normal(scale=noise, size=points.shape), labels


def _synthetic(name: str, description: str, x: np.ndarray, y: np.ndarray, seed: int) -> DatasetSplits:
    train, val, test = standardised_splits(x, y, seed=seed)
    return DatasetSplits(name, description, train, val, test, 2, (2,))


@DATASETS.register("spirals")
def spirals(*, data_dir: Path | None = None, seed: int = 0, n_samples: int = 2000, noise: float = 0.5) -> DatasetSplits:
    """Two interleaved spirals (1.5 turns each); ``noise`` is the Gaussian std in arm-radius units."""
    n_samples = int_option("n_samples", n_samples, MIN_SAMPLES)
    noise = float_option("noise", noise, 0.0)
    x, y = two_spirals(n_samples, noise, np.random.default_rng(seed))
    description = f"Two spirals ({n_samples} points, noise {noise:g}, seed {seed}; split 70/15/15)"
    return _synthetic("spirals", description, x, y, seed)


@DATASETS.register("moons")
def moons(*, data_dir: Path | None = None, seed: int = 0, n_samples: int = 2000, noise: float = 0.2) -> DatasetSplits:
    """scikit-learn's two interleaved unit half-circles; ``noise`` is the Gaussian std."""
    from sklearn.datasets import make_moons

    n_samples = int_option("n_samples", n_samples, MIN_SAMPLES)
    noise = float_option("noise", noise, 0.0)
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    description = f"Two moons ({n_samples} points, noise {noise:g}, seed {seed}; split 70/15/15)"
    return _synthetic("moons", description, x, y.astype(np.int64), seed)
