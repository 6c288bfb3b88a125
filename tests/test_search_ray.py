"""The search loop on a private local Ray instance: real (tiny) trainings recorded by the driver."""

from __future__ import annotations

import pytest

from actlab.search import BASELINES
from actlab.search.loop import run_search
from actlab.search.state import SearchSettings, SearchState

ray = pytest.importorskip("ray")

SETTINGS = SearchSettings(schemas=["unary(x)", "unary(unary(x))"], dataset="moons(n_samples=400)",
                          model="mlp(widths=[8])", epochs=1, batch_size=50, lr=0.01, max_attempts=2)


def test_ray_search_trains_each_function_once_and_records_results_in_sqlite(tmp_path):
    SearchState.init(tmp_path, SETTINGS).close()
    counts = run_search(tmp_path, 10, strategy="random", ray=True, num_cpus=2, progress=False)
    assert not ray.is_initialized()  # the private instance was shut down
    assert counts["done"] + counts["diverged"] == 10 and counts["running"] == 0
    state = SearchState(tmp_path)
    rows = state.rows(["done", "diverged"])
    assert all(r["worker"].startswith("ray-driver@") and r["attempts"] == 1 for r in rows)
    done = [r for r in rows if r["status"] == "done"]
    assert all(0.0 <= r["val_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0 and r["train_time"] > 0 for r in done)
    relu = state.result("relu")
    assert relu["source"] == "baseline" and relu["val_acc"] > 0.75  # moons is easy for relu
    assert {state.representative(b) for b in BASELINES} <= {r["rep"] for r in rows}

