"""Datasets by name: ``load_dataset("mnist10k")`` -> deterministic train/val/test tensors.

Shipped and offline: ``mnist10k``, ``digits``, ``titanic``, ``banknote``,
``spirals``, ``moons``. Read from the user's ``data_dir`` (never downloaded):
``mnist``, ``fashion_mnist``, ``cifar10``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from actlab._registry import unknown_name_message
from actlab.data import cifar as _cifar  # noqa: F401  (registers cifar10)
from actlab.data import images as _images  # noqa: F401  (registers mnist10k, mnist, fashion_mnist, digits)
from actlab.data import synthetic as _synthetic  # noqa: F401  (registers spirals, moons)
from actlab.data import tabular as _tabular  # noqa: F401  (registers titanic, banknote)
from actlab.data.base import DATASETS, DatasetSplits, Split
from actlab.errors import ActlabError
from actlab.spec import name_and_options

_COMMON = ("data_dir", "seed")  # passed to every loader by load_dataset itself


def dataset_names() -> list[str]:
    """The registered dataset names, sorted."""
    return DATASETS.names()


def dataset_options(name: str) -> dict[str, object]:
    """The options ``name`` accepts beyond data_dir and seed, with their defaults."""
    params = inspect.signature(DATASETS.get(name)).parameters
    return {key: p.default for key, p in params.items() if key not in _COMMON}


def load_dataset(name: str, *, data_dir: str | Path | None = None, seed: int = 0, **options: object) -> DatasetSplits:
    """Train/val/test splits of dataset ``name``: x float32, y int64, the same for the same arguments.

    ``seed`` draws the points of generated datasets (spirals, moons); the
    splits of every other dataset are fixed, so runs with different training
    seeds see the same rows. Unknown names and options raise ActlabError.
    """
    valid = dataset_options(name)
    for key in options:
        if key not in valid:
            if not valid:
                raise ActlabError(f"dataset {name!r} takes no options, got {key!r}")
            raise ActlabError(unknown_name_message(f"option of dataset {name!r}:", key, list(valid)))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ActlabError(f"seed must be an integer, got {seed!r}")
    root = Path(data_dir) if data_dir is not None else None
    return DATASETS.get(name)(data_dir=root, seed=seed, **options)


def load_dataset_spec(spec: str, data_dir: str | Path | None = None) -> DatasetSplits:
    """``load_dataset`` from a spec such as ``mnist10k`` or ``spirals(noise=0.3)``."""
    name, options = name_and_options(spec, "dataset")
    return load_dataset(name, data_dir=data_dir, **options)


__all__ = ["DATASETS", "DatasetSplits", "Split", "dataset_names", "dataset_options", "load_dataset",
           "load_dataset_spec"]
