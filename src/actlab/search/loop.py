"""The search loop: baselines first, then the strategy's picks, trained by a backend.

Bingham & Miikkulainen (NeurIPS 2023, https://arxiv.org/abs/2301.05785):
evaluate the baselines, then repeatedly fit the surrogate on every evaluated
function and evaluate the unevaluated one it predicts best. The driver keeps
as many functions in flight as the backend has workers (picking the best
predictions not already in flight), so N workers give an asynchronous batch
version of the same search. ``random`` search runs through the same loop.

The budget counts every function ever asked for in the work directory, the
baselines included, so re-running with the same budget resumes and never
trains more; a diverged function scores :data:`DIVERGED_SCORE` for the surrogate.
"""

from __future__ import annotations

import functools
import hashlib
import json

import multiprocessing as mp
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from actlab import _devices
from actlab._registry import Registry
from actlab.errors import ActlabError
from actlab.search.replay import BASELINES
from actlab.search.state import SearchSettings, SearchState
from actlab.search.surrogate import SURROGATES, make_surrogate
from actlab.search.workers import Evaluator, compute_features, model_for, train_function, work, worker_main

DIVERGED_SCORE = 0.0
FEATURE_SETS = ("outputs", "fisher", "both")


def _candidates(state: SearchState) -> list[int]:
    """Indices of functions never asked for."""
    rows = state.db.execute("SELECT idx FROM search_functions WHERE queued IS NULL ORDER BY idx")
    return [r["idx"] for r in rows]


def scores(state: SearchState) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores (validation accuracy, DIVERGED_SCORE if diverged) of finished functions."""
    rows = state.db.execute("SELECT idx, status, val_acc FROM search_functions WHERE status IN ('done', 'diverged')"
                            " AND finished IS NOT NULL ORDER BY idx").fetchall()
    idx = np.array([r["idx"] for r in rows], dtype=np.int64)
    return idx, np.array([r["val_acc"] if r["status"] == "done" else DIVERGED_SCORE for r in rows])


class RandomStrategy:
    """Uniform picks among the functions never asked for."""

    feature_kinds: tuple[str, ...] = ()

    def __init__(self, seed: int = 0, **_: object) -> None:
        self.seed = seed

    def suggest(self, state: SearchState, n: int) -> list[int]:
        todo = _candidates(state)
        # Seeded by how far the search is, so a resumed search draws what it would have drawn.
        rng = np.random.default_rng([self.seed, len(todo)])
        return [todo[i] for i in rng.permutation(len(todo))[:n]]


class SurrogateStrategy:
    """The unevaluated functions the surrogate predicts best; epsilon-greedy exploration."""

    def __init__(self, seed: int = 0, surrogate: str = "umap_knn", features: str = "both",
                 epsilon: float = 0.0) -> None:
        SURROGATES.get(surrogate)
        if features not in FEATURE_SETS:
            raise ActlabError(f"features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
        if not 0.0 <= epsilon <= 1.0:
            raise ActlabError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.seed, self.epsilon, self.surrogate = seed, epsilon, surrogate
        self.feature_kinds = ("outputs", "fisher") if features == "both" else (features,)
        self.model = make_surrogate(surrogate, seed=seed)
        self._blocks: list[np.ndarray] | None = None

    def blocks(self, state: SearchState) -> list[np.ndarray]:
        if self._blocks is None:
            self._blocks = [state.features(k) for k in self.feature_kinds]
            self._restore_embedding(state)
        return self._blocks

    def _embedding_key(self) -> str:
        digest = hashlib.sha1(b"".join(np.ascontiguousarray(b).tobytes() for b in self._blocks)).hexdigest()[:16]
        return f"embedding:{self.surrogate}:{self.seed}:{digest}"

    def _restore_embedding(self, state: SearchState) -> None:
        """The embedding of all functions (UMAP takes ~30 s) is stored in the work directory once
        computed, so a search killed after it never computes it again."""
        row = state.db.execute("SELECT value FROM search_meta WHERE key=?", (self._embedding_key(),)).fetchone()
        if row is not None:
            self.model.use_embedding(self._blocks, np.array(json.loads(row["value"])))

    def _store_embedding(self, state: SearchState) -> None:
        with state.transaction() as db:
            db.execute("INSERT OR IGNORE INTO search_meta(key, value) VALUES(?, ?)",
                       (self._embedding_key(), json.dumps(self.model.embedding(self._blocks).tolist())))

    def suggest(self, state: SearchState, n: int) -> list[int]:
        todo = np.array(_candidates(state), dtype=np.int64)
        idx, y = scores(state)
        rng = np.random.default_rng([self.seed, len(todo)])
        if len(idx) < getattr(self.model, "k", 2) or not len(todo):
            return [int(i) for i in rng.permutation(todo)[:n]]  # too few scores to fit on
        pred = self.model.fit(self.blocks(state), idx, y).predict(todo)
        self._store_embedding(state)
        ranked = todo[np.lexsort((rng.random(len(todo)), -pred))].tolist()  # best first, ties at random
        picks = []
        for _ in range(min(n, len(ranked))):
            explore = rng.random() < self.epsilon
            picks.append(ranked.pop(int(rng.integers(len(ranked))) if explore else 0))
        return picks


STRATEGIES: Registry[Callable[..., object]] = Registry("search strategy")
STRATEGIES.add("surrogate", SurrogateStrategy)
STRATEGIES.add("random", lambda seed=0, **_: RandomStrategy(seed))


class InProcess:
    """Train in the driver process itself, one function at a time."""

    capacity = 1

    def __init__(self, workdir: Path, evaluator: Evaluator) -> None:
        self.workdir, self.evaluator = workdir, evaluator

    def step(self, state: SearchState) -> None:
        if not work(self.workdir, self.evaluator, max_tasks=1):
            time.sleep(0.2)  # everything open is held by another worker

    def close(self, state: SearchState) -> None:
        pass


class Processes:
    """``n`` spawned worker processes claiming from the state; dead ones are replaced."""

    def __init__(self, workdir: Path, evaluator: Evaluator, n: int, threads: int = 1) -> None:
        self.ctx = mp.get_context("spawn")
        self.stop = self.ctx.Event()
        self.args = (str(workdir), evaluator, self.stop, threads)
        self.capacity, self.restarts = n, 0
        self.procs = [self._start() for _ in range(n)]

    def _start(self):
        p = self.ctx.Process(target=worker_main, args=self.args, daemon=True)
        p.start()
        return p

    def step(self, state: SearchState) -> None:
        for i, p in enumerate(self.procs):
            if p.exitcode is not None:
                self.restarts += 1
                if self.restarts > 3 * self.capacity:
                    raise ActlabError(f"worker processes keep dying (last exit code {p.exitcode}); see their output")
                self.procs[i] = self._start()  # the lost function is reclaimed by the pid check
        time.sleep(0.2)

    def close(self, state: SearchState) -> None:
        self.stop.set()
        for p in self.procs:
            p.join(timeout=30)
            if p.exitcode is None:
                p.terminate()


def make_backend(workdir: Path, evaluator: Evaluator, workers: int = 1, ray: bool = False,
                 ray_address: str | None = None, num_cpus: int | None = None, device=None):
    if ray or ray_address:
        from actlab.search.ray_backend import RayBackend

        return RayBackend(workdir, evaluator, address=ray_address, num_cpus=num_cpus or max(workers, 1),
                          device=device)
    if workers < 0:
        raise ActlabError(f"workers must be >= 0 (0: train in this process), got {workers}")
    return InProcess(workdir, evaluator) if workers == 0 else Processes(workdir, evaluator, workers)


def init_search(workdir: str | Path, **settings: object) -> SearchState:
    """Check the settings (the dataset loads, the model builds), then enumerate the space into ``workdir``."""
    try:
        parsed = SearchSettings(**settings)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ActlabError(f"bad search setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    model_for("relu", parsed)
    return SearchState.init(workdir, parsed)


def run_search(workdir: str | Path, budget: int, *, strategy: str = "surrogate", surrogate: str = "umap_knn",
               features: str = "both", epsilon: float = 0.0, seed: int = 0, workers: int = 1, ray: bool = False,
               ray_address: str | None = None, num_cpus: int | None = None, evaluator: Evaluator = train_function,
               progress: bool = True, device: str | None = None) -> dict[str, int]:
    """Search until ``budget`` functions (baselines included) are finished; returns the status counts.

    ``device`` (e.g. ``"cuda"``) is where every function trains, in whichever worker: the
    evaluator gets it as its keyword ``device``. Like a run's device it is no search setting,
    and the Fisher features are computed on the CPU (stored once, the same on every machine).
    """
    where = _devices.resolve(device)  # a typo or a machine without CUDA: one line before anything starts
    if where is not None:  # a partial pickles: spawned and Ray workers get it; a Ray task's GPU is its only one
        evaluator = functools.partial(evaluator, device=_devices.ray_task_device(where) if ray or ray_address
                                      else str(where))
    if budget <= 0:
        raise ActlabError(f"budget must be a positive number of trainings, got {budget}")
    factory = STRATEGIES.get(strategy)
    state = SearchState(workdir)
    picker = factory(seed=seed, surrogate=surrogate, features=features, epsilon=epsilon)
    if "fisher" in picker.feature_kinds:
        compute_features(state, progress=progress)
    names = state.names()
    baselines = list(dict.fromkeys(state.representative(b) for b in BASELINES))
    state.enqueue(baselines[: max(0, budget - _asked(state))], "baseline")
    backend = make_backend(state.workdir, evaluator, workers, ray, ray_address, num_cpus, where)
    columns = (TextColumn(f"{strategy} search"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    try:
        with Progress(*columns, disable=not progress) as bar:
            task = bar.add_task("", total=budget)
            while True:
                open_work, room = state.open_work(), budget - _asked(state)
                if room > 0 and open_work < backend.capacity and not _baselines_open(state):
                    picks = picker.suggest(state, min(room, backend.capacity - open_work))
                    state.enqueue([names[i] for i in picks], strategy)
                    open_work = state.open_work()
                if open_work == 0:
                    break
                backend.step(state)
                best = state.db.execute("SELECT MAX(val_acc) FROM search_functions").fetchone()[0]
                bar.update(task, completed=state.finished_count(),
                           description=f"best val acc {best:.4f}" if best is not None else "")
    finally:
        backend.close(state)
    counts = state.counts()
    state.close()
    return counts


def _asked(state: SearchState) -> int:
    return state.db.execute("SELECT COUNT(queued) FROM search_functions").fetchone()[0]


def _baselines_open(state: SearchState) -> bool:
    row = state.db.execute("SELECT COUNT(*) FROM search_functions WHERE source='baseline' AND finished IS NULL")
    return row.fetchone()[0] > 0


def best_functions(workdir: str | Path, k: int = 10) -> tuple[list[dict], dict | None]:
    """The ``k`` best finished functions by validation accuracy, and relu's row (None if not trained)."""
    if k <= 0:
        raise ActlabError(f"k must be positive, got {k}")
    state = SearchState(workdir)
    rows = sorted(state.rows(["done"]), key=lambda r: (-r["val_acc"], -(r["test_acc"] or 0), r["rep"]))[:k]
    relu = state.result("relu")
    state.close()
    return rows, relu if relu["status"] == "done" else None
