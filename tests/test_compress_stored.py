"""Compressing a stored run: Python API and CLI, results stored beside the original."""

import pytest

from actlab.cli import main
from actlab.errors import ActlabError
from actlab.experiments import grid, parse_config, run_experiment
from actlab.experiments.compressed import compress_run
from actlab.experiments.results import export
from actlab.store import run_id
from actlab.train import TrainConfig
from data_helpers import write_idx_tree


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("compress_run")
    cfg = parse_config({"name": "c", "datasets": ["moons"], "models": ["mlp(widths=[16])"],
                        "activations": ["rational", "relu"], "epochs": 3, "lr": 0.01})
    run_experiment(cfg, path, progress=False).close()
    return path


def _run_id(workdir, activation):
    from actlab.store import RunStore

    store = RunStore(workdir)
    return next(r["run_id"] for r in store.runs() if r["config"]["activation"] == activation)


def test_compressed_run_is_stored_beside_the_original_with_costs(workdir):
    rid = _run_id(workdir, "rational")
    out = compress_run(workdir, rid[:5], method="pwl", knots=64, latency=False)
    assert abs(out["delta_pp"]) <= 1.0  # a 64-knot table keeps a rational's accuracy on moons
    assert out["activation_flops"] < out["original_activation_flops"]
    from actlab.store import RunStore

    rows, summary = export(RunStore(workdir))
    derived = [r for r in rows if r["activation"] == "rational -> pwl(knots=64)"]
    assert len(derived) == 1 and derived[0]["status"] == "done"
    assert derived[0]["test_acc"] == pytest.approx(out["test_acc"])
    stored = next(r for r in RunStore(workdir).runs() if r["run_id"] == out["run_id"])["info"]
    assert set(stored["fidelity"]) == {"calibration", "stress"}  # the model's change, stored with the run
    assert stored["fidelity"]["stress"]["max"] >= 0 and 0 <= stored["fidelity"]["stress"]["agreement"] <= 1
    assert all(site["stress_max"] is not None for site in stored["sites"])


def test_bad_run_reference_and_sizes_are_clear_errors(workdir):
    with pytest.raises(ActlabError, match="no run"):
        compress_run(workdir, "zzzz")
    with pytest.raises(ActlabError, match="at least 2"):
        compress_run(workdir, _run_id(workdir, "rational"), knots=1)
    with pytest.raises(ActlabError, match="no run store"):
        compress_run(workdir / "missing", "abc")


def test_cli_compress_prints_both_models_and_exit_codes(workdir, capsys):
    rid = _run_id(workdir, "rational")
    assert main(["compress", str(workdir), rid, "--tolerance", "0.01", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "original" in out and "compressed" in out and "percentage points" in out
    assert "stress set (inputs x2)" in out and "predictions kept" in out
    assert main(["compress", str(workdir), rid, "--method", "splin"]) == 2
    assert "Did you mean" in capsys.readouterr().err


def test_cli_compress_writes_onnx_that_onnxruntime_runs_with_the_same_logits(workdir, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    rid = _run_id(workdir, "rational")
    assert main(["compress", str(workdir), rid, "--no-latency", "--onnx", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "m.onnx").is_file() and "ONNX Runtime vs PyTorch" in out
    row = compress_run(workdir, rid, latency=False, onnx=tmp_path / "n.onnx")
    assert row["onnx_max_abs_diff"] <= 1e-4


def test_a_run_trained_from_a_data_dir_records_it_and_compresses_from_it(tmp_path):
    write_idx_tree(tmp_path / "data" / "MNIST" / "raw")
    cfg = parse_config({"name": "d", "datasets": ["mnist(val_size=10)"], "models": ["mlp(widths=[8])"],
                        "activations": ["tanh"], "epochs": 1, "data_dir": str(tmp_path / "data")})
    (run,) = grid(cfg)
    assert run["data_dir"] == str(tmp_path / "data")
    run_experiment(cfg, tmp_path / "work", progress=False).close()
    out = compress_run(tmp_path / "work", run_id(run), knots=16, latency=False)
    assert out["original"] == run_id(run) and out["activation"] == "tanh -> pwl(knots=16)"


def test_a_config_without_data_dir_keeps_its_run_ids():
    cfg = parse_config({"name": "d", "datasets": ["moons"], "models": ["mlp"], "activations": ["relu"],
                        "epochs": 2, "lr": 0.01})
    train = TrainConfig(epochs=2, lr=0.01).model_dump()  # the run config as it has always been written
    assert grid(cfg) == [{"dataset": "moons", "model": "mlp", "activation": "relu", "seed": 0, "train": train}]
