"""The search state, its workers and the search loop, with fast fake evaluators."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from actlab.errors import ActlabError
from actlab.search import BASELINES
from actlab.search.features import evaluate_expressions
from actlab.search.loop import SurrogateStrategy, run_search
from actlab.search.state import Outcome, SearchSettings, SearchState
from actlab.search.workers import evaluate, work

SETTINGS = SearchSettings(schemas=["unary(x)", "unary(unary(x))"], dataset="moons(n_samples=400)",
                          model="mlp(widths=[16,16,16])", epochs=1, batch_size=50, lr=0.01, max_attempts=2)


def score_of(expr: str) -> float:
    """A smooth stand-in for accuracy: high for functions that look like relu."""
    y = evaluate_expressions([expr])[0].clamp(-10, 10).numpy().astype(np.float64)
    x = evaluate_expressions(["relu(x)"])[0].numpy()
    return float(np.exp(-np.mean((y - x) ** 2) / 4))


@dataclass
class LoggingEval:
    """Appends ``pid expr`` to a file (O_APPEND writes of one line do not interleave), then scores."""

    log: str
    sleep: float = 0.0
    block_on: str | None = None

    def __call__(self, expr: str, settings: SearchSettings) -> Outcome:
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {expr}\n")
        if expr == self.block_on:
            time.sleep(600)  # killed here by the test
        time.sleep(self.sleep)
        acc = score_of(expr)
        return Outcome("done", acc, acc, 1.0 - acc, self.sleep)


def raising_eval(expr: str, settings: SearchSettings) -> Outcome:
    raise RuntimeError(f"cannot train {expr}")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # OpenBLAS threads spin against each other on a busy 2-core machine: PCA takes 20x longer.
    with threadpool_limits(1):
        yield


@pytest.fixture
def workdir(tmp_path):
    SearchState.init(tmp_path / "w", SETTINGS).close()
    return tmp_path / "w"


def _logged(path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []


def test_concurrent_workers_claiming_from_one_state_evaluate_each_function_once(workdir, tmp_path):
    # Threads, each with its own connection, lock the database as processes do (the process
    # version is the next test); the GIL switches between them inside and between transactions.
    state = SearchState(workdir)
    names = state.names()[:40]
    state.enqueue(names, "test")
    log = tmp_path / "calls.log"
    threads = [threading.Thread(target=work, args=(workdir, LoggingEval(str(log), 0.01)), kwargs={"worker": f"t{i}"})
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(line.split(" ", 1)[1] for line in _logged(log)) == sorted(names)  # each once, none twice
    rows = state.rows(["done"])
    assert len(rows) == 40 and all(r["attempts"] == 1 for r in rows)
    assert len({r["worker"] for r in rows}) >= 2  # the work was really shared
    assert sorted(r["finished"] for r in rows) == list(range(1, 41))


def test_three_worker_processes_train_each_function_once(workdir, tmp_path):
    log = tmp_path / "calls.log"
    counts = run_search(workdir, 15, strategy="random", workers=3, evaluator=LoggingEval(str(log), 0.05),
                        progress=False)
    calls = [line.split(" ", 1) for line in _logged(log)]
    assert counts["done"] == 15 and len(calls) == 15 and len({expr for _, expr in calls}) == 15
    assert len({pid for pid, _ in calls}) >= 2 and str(os.getpid()) not in {pid for pid, _ in calls}


def test_a_killed_worker_loses_nothing_committed_and_its_function_is_retried(workdir, tmp_path):
    state = SearchState(workdir)
    names = state.names()[:3]
    state.enqueue(names, "test")
    log = tmp_path / "calls.log"
    proc = mp.get_context("spawn").Process(target=work, args=(str(workdir), LoggingEval(str(log), block_on=names[2])))
    proc.start()
    deadline = time.time() + 120
    while len(_logged(log)) < 3 and time.time() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    before = {r["rep"]: r for r in state.rows()}
    assert [before[n]["status"] for n in names] == ["done", "done", "running"]
    assert work(workdir, LoggingEval(str(log))) == 1  # the dead worker's pid frees its claim
    after = {r["rep"]: r for r in state.rows()}
    assert after[names[2]]["status"] == "done" and after[names[2]]["attempts"] == 2
    for n in names[:2]:
        assert after[n] == before[n]  # committed results are untouched
    assert after[names[2]]["val_acc"] == pytest.approx(score_of(names[2]))


def test_an_expired_lease_is_taken_over_and_the_late_worker_cannot_overwrite(workdir):
    state = SearchState(workdir)
    state.enqueue(state.names()[:2], "test")
    first = state.claim("a")
    assert state.claim("b").rep != first.rep  # a live claim is exclusive
    state.db.execute("UPDATE search_functions SET lease=?, host='elsewhere' WHERE rep=?", (time.time() - 1, first.rep))
    again = state.claim("c")
    assert (again.rep, again.attempt) == (first.rep, 2)
    assert not state.heartbeat(first)
    assert not state.record(first, Outcome("done", 0.1, 0.1, 1.0))
    assert state.record(again, Outcome("done", 0.9, 0.8, 0.1))
    assert state.result(first.rep)["val_acc"] == 0.9


def test_failing_functions_are_retried_up_to_max_attempts_then_stay_failed(workdir):
    state = SearchState(workdir)
    name = state.names()[0]
    state.enqueue([name], "test")
    assert work(workdir, raising_eval) == SETTINGS.max_attempts
    row = state.result(name)
    assert row["status"] == "failed" and row["attempts"] == SETTINGS.max_attempts
    assert row["error"] == f"RuntimeError: cannot train {name}"
    assert state.claim("x") is None and state.open_work() == 0


@pytest.mark.parametrize("expr", ["exp(cosh(x))", "cosh(cosh(x))"])
def test_a_diverging_training_is_recorded_as_diverged(workdir, expr):
    state = SearchState(workdir)
    state.enqueue([expr], "test")
    assert work(workdir) == 1  # the real trainer: these blow up the 3-layer MLP
    row = state.result(expr)
    assert row["status"] == "diverged" and row["diverged_epoch"] == 1 and row["val_acc"] is None


def test_non_finite_metrics_from_an_evaluator_count_as_diverged():
    out = evaluate("relu(x)", SETTINGS, lambda e, s: Outcome("done", float("nan"), 0.5, 0.1))
    assert out.status == "diverged"


def test_results_are_shared_by_equivalent_expressions(workdir):
    state = SearchState(workdir)
    rep = state.representative("relu")
    members = [n for n, r in state.space.representative.items() if r == rep]
    assert len(members) >= 3  # e.g. relu(x), abs(relu(x)), relu(relu(x))
    state.enqueue([members[-1]], "test")
    work(workdir, LoggingEval(os.devnull))
    for name in members + ["relu", "max(relu(x),zero(x))"]:  # the last is not enumerated, only equivalent
        assert state.result(name)["rep"] == rep and state.result(name)["status"] == "done"
    assert state.enqueue(members, "test") == 0  # already asked for through another name
    with pytest.raises(ActlabError, match="not equivalent"):
        state.result("add(relu(x),exp(x))")


def test_the_surrogate_suggests_only_functions_never_asked_for(workdir):
    state = SearchState(workdir)
    names = state.names()
    asked = names[::7]
    state.enqueue(asked, "test")
    work(workdir, LoggingEval(os.devnull))
    state.enqueue(names[1::50], "test")  # asked for but not evaluated yet: not suggested either
    strategy = SurrogateStrategy(surrogate="pca_knn", features="outputs", epsilon=0.3)
    picks = strategy.suggest(state, 40)
    assert len(set(picks)) == 40
    assert not {names[i] for i in picks} & (set(asked) | set(names[1::50]))


def test_search_runs_baselines_first_then_stays_within_budget_and_resumes(workdir, tmp_path):
    log = tmp_path / "calls.log"
    ev = LoggingEval(str(log))
    counts = run_search(workdir, 14, surrogate="pca_knn", features="outputs", workers=0, evaluator=ev,
                        progress=False)
    assert counts["done"] == 14
    state = SearchState(workdir)
    calls = [line.split(" ", 1)[1] for line in _logged(log)]
    assert calls[:8] == list(dict.fromkeys(state.representative(b) for b in BASELINES))
    assert len(set(calls)) == 14
    run_search(workdir, 14, strategy="random", workers=0, evaluator=ev, progress=False)
    assert len(_logged(log)) == 14  # the budget counts what was trained before
    run_search(workdir, 16, strategy="random", workers=0, evaluator=ev, progress=False)
    assert len(set(_logged(log))) == 16 and state.finished_count() == 16


def test_surrogate_search_beats_random_search_on_a_smooth_score(workdir, tmp_path):
    scores = np.array([score_of(n) for n in SearchState(workdir).names()])
    top = np.sort(scores)[-5]
    found = {}
    for strategy in ("surrogate", "random"):
        path = tmp_path / strategy
        SearchState.init(path, SETTINGS).close()
        run_search(path, 30, strategy=strategy, surrogate="pca_knn", features="outputs", workers=0,
                   evaluator=LoggingEval(os.devnull), progress=False)
        found[strategy] = sum(r["val_acc"] >= top for r in SearchState(path).rows(["done"]))
    assert found["surrogate"] >= 3 > found["random"]


def test_bad_search_arguments_raise_one_line_errors(workdir, tmp_path):
    with pytest.raises(ActlabError, match="budget must be a positive"):
        run_search(workdir, 0)
    with pytest.raises(ActlabError, match="unknown search strategy 'randon'. Did you mean 'random'"):
        run_search(workdir, 5, strategy="randon")
    with pytest.raises(ActlabError, match="unknown surrogate"):
        run_search(workdir, 5, surrogate="knn")
    with pytest.raises(ActlabError, match="search init"):
        run_search(tmp_path / "nothing", 5)
    with pytest.raises(ActlabError, match="other settings"):
        SearchState.init(workdir, SETTINGS.model_copy(update={"epochs": 3}))


def test_the_surrogate_embedding_is_stored_so_a_restarted_search_never_fits_it_again(workdir, tmp_path, monkeypatch):
    ev = LoggingEval(str(tmp_path / "log"))
    run_search(workdir, 12, surrogate="pca_knn", features="outputs", workers=0, evaluator=ev, progress=False)
    state = SearchState(workdir)
    keys = [r[0] for r in state.db.execute("SELECT key FROM search_meta WHERE key LIKE 'embedding:%'")]
    assert len(keys) == 1
    fresh = SurrogateStrategy(surrogate="pca_knn", features="outputs")
    monkeypatch.setattr(type(fresh.model), "_embed", lambda self, x: pytest.fail("the embedding was computed again"))
    picks = fresh.suggest(state, 3)
    assert len(picks) == 3
    state.close()
