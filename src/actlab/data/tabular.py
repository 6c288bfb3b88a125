"""Shipped tabular datasets: Titanic and UCI banknote authentication.

Both are split 70/15/15 (stratified) with the fixed split seed 0, so results
across training seeds compare on the same rows; every imputation and the
standardisation use statistics of the train split only.
"""

from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from pathlib import Path

import numpy as np

from actlab.data.base import DATASETS, SPLIT_SEED, DatasetSplits, Split, fresh, standardised_splits

TITANIC_FEATURES = (
    "pclass", "sex_female", "age", "sibsp", "parch", "log1p_fare", "embarked_C", "embarked_Q", "embarked_S",
)  # fmt: skip
PORTS = ("C", "Q", "S")  # Cherbourg, Queenstown, Southampton
BANKNOTE_FEATURES = ("variance", "skewness", "curtosis", "entropy")  # of the wavelet-transformed image


def _read_text(name: str) -> str:
    return (resources.files("actlab.data") / "files" / name).read_text(encoding="utf-8")


def read_titanic() -> tuple[np.ndarray, np.ndarray]:
    """Raw columns (pclass, sex_female, age, sibsp, parch, fare, port) and survived.

    A missing age is NaN and a missing port is -1; ``titanic_features``
    fills them from the train rows.
    """
    rows = list(csv.DictReader(io.StringIO(_read_text("titanic.csv"))))
    raw = np.array(
        [
            [
                float(r["pclass"]),
                1.0 if r["sex"] == "female" else 0.0,
                float(r["age"]) if r["age"] else np.nan,
                float(r["sibsp"]),
                float(r["parch"]),
                float(r["fare"]),
                float(PORTS.index(r["embarked"])) if r["embarked"] else -1.0,
            ]
            for r in rows
        ]
    )
    survived = np.array([int(r["survived"]) for r in rows], dtype=np.int64)
    return raw, survived


def titanic_features(raw: np.ndarray, train_idx: np.ndarray) -> np.ndarray:
    """The 9 TITANIC_FEATURES, with missing values filled from train statistics only."""
    age = raw[:, 2].copy()
    age[np.isnan(age)] = np.nanmedian(age[train_idx])
    port = raw[:, 6].astype(np.int64)
    train_ports = port[train_idx][port[train_idx] >= 0]
    port[port < 0] = np.bincount(train_ports, minlength=len(PORTS)).argmax()  # the most frequent port
    one_hot = np.eye(len(PORTS))[port]
    # log1p: fares are heavily right-skewed (0 to 512); the log keeps a few
    # first-class tickets from dominating the standardised column.
    fare = np.log1p(raw[:, 5])
    return np.column_stack([raw[:, 0], raw[:, 1], age, raw[:, 3], raw[:, 4], fare, one_hot])


@functools.lru_cache(maxsize=1)
def _titanic_splits() -> tuple[Split, Split, Split]:
    raw, survived = read_titanic()
    return standardised_splits(raw, survived, seed=SPLIT_SEED, prepare=titanic_features)


@DATASETS.register("titanic")
def titanic(*, data_dir: Path | None = None, seed: int = 0) -> DatasetSplits:
    """Titanic survival from 9 standardised passenger features; ``seed`` does not change the split."""
    train, val, test = (fresh(s) for s in _titanic_splits())
    description = "Titanic (Kaggle train set, 891 passengers; split 70/15/15)"
    return DatasetSplits("titanic", description, train, val, test, 2, (len(TITANIC_FEATURES),))


@functools.lru_cache(maxsize=1)
def _banknote_splits() -> tuple[Split, Split, Split]:
    table = np.loadtxt(io.StringIO(_read_text("banknote_authentication.csv")), delimiter=",", skiprows=1)
    return standardised_splits(table[:, :4], table[:, 4].astype(np.int64), seed=SPLIT_SEED)


@DATASETS.register("banknote")
def banknote(*, data_dir: Path | None = None, seed: int = 0) -> DatasetSplits:
    """UCI banknote authentication: genuine (0) or forged (1) from 4 wavelet statistics."""
    train, val, test = (fresh(s) for s in _banknote_splits())
    description = "UCI banknote authentication (1,372 banknotes, 4 wavelet features; split 70/15/15)"
    return DatasetSplits("banknote", description, train, val, test, 2, (len(BANKNOTE_FEATURES),))
