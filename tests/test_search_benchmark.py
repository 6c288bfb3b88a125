"""Act-Bench tables: the loader, features cached in a work directory, and the resumable bench table."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from actlab.errors import ActlabError
from actlab.search import SearchState
from actlab.search.benchmark import ACTBENCH_SETTINGS, FIELDS, SHIPPED, load_benchmark, write_table

BENCH = Path(__file__).parents[1] / "bench" / "actbench.py"


def _rows(names):
    statuses = ["done", "diverged", "done"]
    return [{"name": n, "baseline": "", "equivalent_names": 1, "status": s,
             "val_acc": 0.5 + 0.1 * i if s == "done" else None, "test_acc": 0.4 if s == "done" else None,
             "val_loss": 1.0 if s == "done" else None, "train_time_s": 2.0, "diverged_epoch": 1 if s != "done" else None,
             "attempts": 1, "seed": 0, "error": ""} for i, (n, s) in enumerate(zip(names, statuses))]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    work = tmp_path_factory.mktemp("actbench")
    state = SearchState.init(work / "cache", ACTBENCH_SETTINGS)
    names = [state.representative(b) for b in ("relu", "tanh", "softplus")]
    state.close()
    write_table(_rows(names), work / "t.csv")
    return work, names


def test_the_shipped_table_loads_with_one_row_per_distinct_function():
    bench = load_benchmark()
    assert SHIPPED.is_file() and len(bench) == len(set(bench.names)) > 0
    assert set(bench.status) <= {"done", "diverged", "failed"}
    done = bench.status == "done"
    assert np.all((bench.metric("val_acc")[done] >= 0) & (bench.metric("val_acc")[done] <= 1))


def test_metrics_are_nan_and_scores_are_zero_where_a_function_diverged(table):
    work, names = table
    bench = load_benchmark(work / "t.csv")
    assert bench.names == names
    np.testing.assert_allclose(bench.metric("val_acc"), [0.5, np.nan, 0.7])
    np.testing.assert_allclose(bench.scores(), [0.5, 0.0, 0.7])
    with pytest.raises(ActlabError, match="unknown metric"):
        bench.metric("accuracy")


def test_features_are_the_spaces_outputs_and_fisher_spectra_cached_in_the_work_directory(table):
    work, names = table
    bench = load_benchmark(work / "t.csv", workdir=work / "cache")
    state = SearchState(work / "cache")
    expect = np.stack([state.space.outputs[state.space.unique.index(n)].numpy() for n in names]).astype(np.float64)
    np.testing.assert_array_equal(bench.features("outputs"), expect)
    fisher = bench.features("fisher")
    assert fisher.shape[0] == 3 and np.isfinite(fisher).all()
    assert state.missing_fisher(names) == []  # cached: a second call trains and featurises nothing
    np.testing.assert_array_equal(bench.features("fisher"), fisher)
    with pytest.raises(ActlabError, match="work directory"):
        load_benchmark(work / "t.csv").features("outputs")


def test_malformed_tables_are_one_line_errors(tmp_path):
    with pytest.raises(ActlabError, match="no benchmark table"):
        load_benchmark(tmp_path / "missing.csv")
    (tmp_path / "cols.csv").write_text("name,val_acc\nrelu(x),0.9\n")
    with pytest.raises(ActlabError, match="columns .* missing"):
        load_benchmark(tmp_path / "cols.csv")
    rows = _rows(["relu(x)"])
    rows[0]["status"] = "running"
    write_table(rows, tmp_path / "status.csv")
    with pytest.raises(ActlabError, match="unknown status 'running'"):
        load_benchmark(tmp_path / "status.csv")


def test_the_bench_resumes_from_its_committed_table_in_a_fresh_work_directory(table, tmp_path):
    spec = importlib.util.spec_from_file_location("actbench", BENCH)
    actbench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(actbench)
    work, names = table
    state = SearchState.init(tmp_path / "fresh", ACTBENCH_SETTINGS)
    assert actbench.import_table(state, work / "t.csv") == 3
    assert actbench.import_table(state, work / "t.csv") == 0  # already there
    assert {r["rep"]: r["status"] for r in state.rows(("done", "diverged"))} == dict(zip(names, ["done", "diverged", "done"]))
    assert state.counts()["pending"] == len(state.names()) - 3
    assert actbench.export_table(state, tmp_path / "out.csv") == 3
    again = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["name"] for r in again] == sorted(names, key=state.names().index) and list(again[0]) == list(FIELDS)
