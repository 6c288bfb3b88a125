"""Act-Bench tables: every function of a search space trained once, usable without training.

Bingham & Miikkulainen (NeurIPS 2023) trained every function of their space
to study surrogates on the table; ``bench/actbench.py`` does the same for the
default space on MNIST-10k and writes ``actbench_mnist10k.csv`` (shipped in
the package). :func:`load_benchmark` reads such a table; its features (output
distributions, and the Fisher spectra, which take a forward and backward pass
per function) are recomputed on demand and cached in a work directory, so a
surrogate can be studied in seconds, as NAS-Bench tables are used for
architecture search.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from actlab.errors import ActlabError
from actlab.search.state import SearchSettings, SearchState

# The settings every function of Act-Bench-MNIST10k was trained with (also bench/actbench_mini.py's).
ACTBENCH_SETTINGS = SearchSettings(dataset="mnist10k", model="cnn(channels=8)", epochs=2, batch_size=128, lr=2e-3,
                                   seed=0)
SHIPPED = Path(__file__).with_name("data") / "actbench_mnist10k.csv"
FIELDS = ("name", "baseline", "equivalent_names", "status", "val_acc", "test_acc", "val_loss", "train_time_s",
          "diverged_epoch", "attempts", "seed", "error")
METRICS = ("val_acc", "test_acc", "val_loss", "train_time_s")
FINISHED = ("done", "diverged", "failed")


@dataclass
class Benchmark:
    """One row per function: ``names`` (class representatives) and their metrics, in table order."""

    names: list[str]
    rows: list[dict]
    settings: SearchSettings = field(default_factory=lambda: ACTBENCH_SETTINGS)
    workdir: Path | None = None

    def __len__(self) -> int:
        return len(self.names)

    def metric(self, key: str) -> np.ndarray:
        """A metric column as floats, NaN where the function has none (diverged or failed)."""
        if key not in METRICS:
            raise ActlabError(f"unknown metric {key!r}; one of {', '.join(METRICS)}")
        return np.array([np.nan if r[key] in ("", None) else float(r[key]) for r in self.rows])

    @property
    def status(self) -> np.ndarray:
        return np.array([r["status"] for r in self.rows])

    def scores(self, diverged: float = 0.0) -> np.ndarray:
        """Validation accuracy, ``diverged`` for functions without one (the search's convention)."""
        return np.nan_to_num(self.metric("val_acc"), nan=diverged)

    def state(self) -> SearchState:
        """The search state of the cache directory (created on first use)."""
        if self.workdir is None:
            raise ActlabError("features need a work directory: load_benchmark(..., workdir=DIR)")
        return SearchState.init(self.workdir, self.settings)

    def features(self, kind: str, progress: bool = False) -> np.ndarray:
        """``outputs`` or ``fisher`` features of every row, computed once and cached in ``workdir``."""
        state = self.state()
        try:
            if kind == "fisher":
                from actlab.search.workers import compute_features

                compute_features(state, self.names, progress=progress)
            return state.features(kind, self.names)
        finally:
            state.close()


def read_table(path: str | Path) -> list[dict]:
    """The rows of an Act-Bench CSV, checked for the expected columns and statuses."""
    path = Path(path)
    if not path.is_file():
        raise ActlabError(f"no benchmark table at {path}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in FIELDS if c not in (reader.fieldnames or [])]
        if missing:
            raise ActlabError(f"{path} is not an Act-Bench table: columns {', '.join(missing)} are missing")
        rows = list(reader)
    bad = sorted({r["status"] for r in rows} - set(FINISHED))
    if bad:
        raise ActlabError(f"{path}: unknown status {bad[0]!r} (expected one of {', '.join(FINISHED)})")
    return rows


def write_table(rows: list[dict], path: str | Path) -> None:
    """Write rows atomically (a reader never sees half a table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        w.writerows({k: ("" if r.get(k) is None else r[k]) for k in FIELDS} for r in rows)
    tmp.replace(path)


def load_benchmark(path: str | Path | None = None, workdir: str | Path | None = None,
                   settings: SearchSettings = ACTBENCH_SETTINGS) -> Benchmark:
    """The Act-Bench table at ``path`` (default: Act-Bench-MNIST10k shipped with actlab).

    ``workdir`` is where features are cached; it is only needed for :meth:`Benchmark.features`.
    """
    rows = read_table(SHIPPED if path is None else path)
    return Benchmark([r["name"] for r in rows], rows, settings, None if workdir is None else Path(workdir))
