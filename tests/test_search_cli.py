"""``actlab search init|features|run|status|best`` and the search section of ``actlab report``."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_limits

from actlab.cli import main
from actlab.search.state import SearchState

INIT = ["search", "init", "--schemas", "unary(x)", "unary(unary(x))", "--dataset", "moons(n_samples=400)",
        "--model", "mlp(widths=[8])", "--epochs", "1", "--batch-size", "50", "--lr", "0.01"]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):  # spinning OpenBLAS threads slow PCA/UMAP 20x on a busy 2-core machine
        yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("search") / "w"
    with threadpool_limits(1):
        assert main([*INIT, str(path)]) == 0
        assert main(["search", "run", str(path), "--budget", "12", "--strategy", "surrogate", "--surrogate",
                     "pca_knn", "--workers", "0", "--no-progress"]) == 0
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("actlab: error: "), err
    return err


def test_init_prints_the_space_counts_and_saves_the_settings(workdir, capsys):
    assert main([*INIT, str(workdir)]) == 0  # same settings again: a no-op
    out = capsys.readouterr().out
    assert "549 unique (exact equivalence)" in out
    assert (workdir / "search_settings.json").exists()


def test_run_trains_the_budget_and_features_are_all_stored(workdir, capsys):
    state = SearchState(workdir)
    assert state.finished_count() == 12 and state.missing_fisher() == []
    assert main(["search", "features", str(workdir), "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("Fisher features: 0 computed, 549 stored")


def test_status_counts_each_status(workdir, capsys):
    assert main(["search", "status", str(workdir)]) == 0
    out = capsys.readouterr().out
    counts = SearchState(workdir).counts()
    assert f"asked for: {counts['done'] + counts['diverged'] + counts['failed']}" in out
    assert str(counts["pending"]) in out


def test_best_lists_k_functions_next_to_relu(workdir, capsys):
    assert main(["search", "best", str(workdir), "-k", "3"]) == 0
    out = capsys.readouterr().out
    relu = SearchState(workdir).result("relu")
    assert f"relu ({relu['rep']}): val {relu['val_acc']:.4f}" in out
    assert out.count("baseline") + out.count("surrogate") == 3


def test_report_has_a_search_section_with_curve_embedding_and_shapes(workdir, monkeypatch):
    monkeypatch.setattr("actlab.search.report.EMBEDDING", "pca")  # UMAP's first call compiles for a minute
    assert main(["report", str(workdir)]) == 0
    page = (workdir / "report.html").read_text()
    assert "<h2>Activation search</h2>" in page
    for alt in ("search curve", "embedding", "best shapes"):
        assert f'alt="{alt}"' in page


@pytest.mark.parametrize(("args", "message"), [
    (["run", "{w}", "--budget", "5", "--strategy", "greedy"], "unknown search strategy 'greedy'"),
    (["run", "{w}", "--budget", "0"], "budget must be a positive number"),
    (["run", "{w}", "--budget", "5", "--features", "fisher2"], "features must be one of"),
    (["best", "{w}", "-k", "0"], "k must be positive"),
    (["status", "{missing}"], "is not a search work directory"),
    (["run", "{missing}", "--budget", "5"], "is not a search work directory"),
])
def test_bad_input_gives_one_error_line(workdir, tmp_path, capsys, args, message):
    argv = [a.format(w=workdir, missing=tmp_path / "none") for a in args]
    assert main(["search", *argv]) == 2
    assert message in _error_line(capsys)


def test_init_rejects_bad_settings_in_one_line(tmp_path, capsys):
    assert main([*INIT[:2], str(tmp_path / "a"), "--epochs", "0"]) == 2
    assert "bad search setting epochs" in _error_line(capsys)
    assert main([*INIT[:2], str(tmp_path / "b"), "--model", "mpl"]) == 2
    assert "unknown model 'mpl'" in _error_line(capsys)
    assert main([*INIT[:2], str(tmp_path / "c"), "--equivalence", "fuzzy"]) == 2
    assert "equivalence must be" in _error_line(capsys)
