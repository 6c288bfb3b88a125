"""Evaluating functions: the training evaluator, the worker loop, and the Fisher feature job.

An evaluator is any picklable ``f(expr, settings) -> Outcome``; the default,
:func:`train_function`, trains the settings' model with the expression as its
activation. Tests inject fast fakes through the same argument.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from actlab.data import load_dataset_spec
from actlab.models import make_model
from actlab.search.fisher import fisher_features
from actlab.search.state import Claim, Outcome, SearchSettings, SearchState, worker_id
from actlab.store import lease
from actlab.train import TrainConfig, train_run

Evaluator = Callable[[str, SearchSettings], Outcome]


@functools.lru_cache(maxsize=2)
def _dataset(spec: str):
    return load_dataset_spec(spec)


def model_for(expr: str, settings: SearchSettings):
    """The settings' model with activation ``expr``, on weights drawn from the settings' seed."""
    data = _dataset(settings.dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return make_model(settings.model, data.input_shape, data.num_classes, activation=expr), data


def train_function(expr: str, settings: SearchSettings, device: str | None = None) -> Outcome:
    """Train once with a fixed seed (on ``device``, default the CPU); a non-finite loss or
    accuracy makes the outcome ``diverged``."""
    model, data = model_for(expr, settings)
    cfg = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=settings.seed)
    res = train_run(model, data, cfg, device=device)
    if res.status == "diverged":
        return Outcome("diverged", train_time=res.train_time, diverged_epoch=res.diverged_epoch)
    last = res.history[-1]
    return Outcome("done", last["val_acc"], res.test["acc"], last["val_loss"], res.train_time)


def evaluate(expr: str, settings: SearchSettings, evaluator: Evaluator) -> Outcome:
    """Run an evaluator; an exception becomes a ``failed`` outcome carrying the error."""
    start = time.perf_counter()
    try:
        out = evaluator(expr, settings)
    except Exception as exc:  # any failure of one function must not stop the search
        return Outcome("failed", train_time=time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}"[:500])
    scores = (out.val_acc, out.test_acc, out.val_loss)
    if out.status == "done" and not all(v is not None and math.isfinite(v) for v in scores):
        return Outcome("diverged", train_time=out.train_time, error="non-finite validation or test metrics")
    return out


@contextmanager
def heartbeat(workdir: Path, claim: Claim, interval: float):
    """Renew ``claim``'s lease from a thread (with its own connection) while the body runs."""
    held: list[SearchState] = []

    def renew() -> bool:
        if not held:
            held.append(SearchState(workdir))
        return held[0].heartbeat(claim)

    with lease.heartbeat(renew, interval, close=lambda: held and held[0].close()):
        yield


def work(workdir: str | Path, evaluator: Evaluator = train_function, *, worker: str | None = None,
         stop: threading.Event | None = None, max_tasks: int | None = None, poll_s: float = 0.2,
         alive: Callable[[], bool] | None = None) -> int:
    """Claim and evaluate queued functions; returns how many this worker recorded.

    Without ``stop`` the worker returns when nothing is left to claim; with it,
    it waits for more work until ``stop`` is set. It also returns as soon as
    ``alive()`` is False (a spawned worker whose driver died).
    """
    state = SearchState(workdir)
    worker = worker or worker_id()
    recorded = 0
    try:
        while (max_tasks is None or recorded < max_tasks) and (alive is None or alive()):
            claim = state.claim(worker)
            if claim is None:
                if stop is None or stop.is_set():
                    break
                time.sleep(poll_s)
                continue
            with heartbeat(state.workdir, claim, state.settings.lease_s / 4):
                out = evaluate(claim.rep, state.settings, evaluator)
            recorded += state.record(claim, out)
    finally:
        state.close()
    return recorded


def worker_main(workdir: str, evaluator: Evaluator, stop, threads: int = 1) -> None:
    """Entry point of a spawned worker process."""
    lease.die_with_parent()
    torch.set_num_threads(threads)
    work(workdir, evaluator, stop=stop, alive=lease.parent_watch())


def compute_features(state: SearchState, names: Sequence[str] | None = None, *, progress: bool = True,
                     chunk: int = 25) -> int:
    """Fisher features of every function (or of ``names``) that lacks them; commits every ``chunk``.

    Each model starts from the settings' seed and is featurised on the first
    ``fisher_batch`` training examples, labels sampled from its own predictions.
    Returns how many functions were featurised.
    """
    todo = state.missing_fisher(names)
    s = state.settings
    columns = (TextColumn("Fisher features"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("features", total=len(todo))
        for lo in range(0, len(todo), chunk):
            rows = []
            for rep in todo[lo : lo + chunk]:
                model, data = model_for(rep, s)
                with torch.random.fork_rng(devices=[]):
                    rows.append((rep, fisher_features(model.eval(), data.train.x[: s.fisher_batch], seed=s.seed)))
                bar.advance(task)
            state.put_fisher(rows)
    return len(todo)
