"""``actlab plot youden|curves`` and the annealing section of the report, on a tiny moons grid."""

from __future__ import annotations

import re

import numpy as np
import pytest

from actlab.annealing.report import annealing_section, is_annealing, with_site_means
from actlab.cli import build_parser, main
from actlab.experiments import parse_config, run_experiment, write_report
from actlab.experiments.results import run_rows
from actlab.store import RunStore

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANNEALING = [
    "theta_relu(mode=fixed,theta=0)",
    "theta_relu(schedule=linear(start=0.7853981633974483,end=0,epochs=1))",
    "theta_relu(mode=trainable,sharing=neuron)",
    "anneal(base=relu,schedule=linear(start=0,end=1,epochs=1))",
]


def _grid(workdir, activations: list[str], epochs: int) -> None:
    cfg = parse_config({"name": "tiny", "datasets": ["moons(n_samples=200)"], "models": ["mlp(widths=[8,8])"],
                        "activations": activations, "seeds": [0, 1], "epochs": epochs, "batch_size": 50,
                        "lr": 0.01})
    run_experiment(cfg, workdir, progress=False).close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("anneal") / "work"
    _grid(path, ANNEALING, epochs=2)
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_plot_youden_writes_a_png_into_the_workdir_and_prints_its_path(workdir, capsys):
    assert main(["plot", "youden", str(workdir)]) == 0
    path = workdir / "youden.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plot_youden_honours_out_log_and_a_two_key_group(workdir, tmp_path, capsys):
    out = tmp_path / "y.png"
    args = ["plot", "youden", str(workdir), "--x", "final_train_loss", "--y", "final_val_loss", "--log",
            "--group", "activation,seed", "--out", str(out)]
    assert main(args) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_plot_youden_with_an_unknown_metric_lists_the_available_keys(workdir, capsys):
    assert main(["plot", "youden", str(workdir), "--x", "final_trian_error"]) == 2
    err = _error_line(capsys)
    assert "unknown metric 'final_trian_error'" in err
    assert "final_train_error" in err and "test_acc" in err


def test_plot_with_an_unknown_group_or_experiment_names_the_valid_ones(workdir, capsys):
    assert main(["plot", "youden", str(workdir), "--group", "activaton"]) == 2
    assert "unknown group key 'activaton'" in _error_line(capsys)
    assert main(["plot", "curves", str(workdir), "--experiment", "nope"]) == 2
    assert "experiments: tiny" in _error_line(capsys)


def test_plot_on_a_directory_without_a_run_store_is_a_one_line_error(tmp_path, capsys):
    assert main(["plot", "youden", str(tmp_path)]) == 2
    assert "no run store" in _error_line(capsys)


@pytest.mark.parametrize("key", ["val_acc", "theta_deg", "t"])
def test_plot_curves_writes_a_png_per_key(workdir, key, capsys):
    assert main(["plot", "curves", str(workdir), "--key", key, "--band", "std"]) == 0
    path = workdir / f"curves_{key}.png"
    assert capsys.readouterr().out.strip() == str(path)
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_plot_curves_with_an_unknown_key_lists_keys_and_summarises_per_site_ones(workdir, capsys):
    assert main(["plot", "curves", str(workdir), "--key", "thet"]) == 2
    err = _error_line(capsys)
    assert "no run logged 'thet'" in err and "theta_deg" in err and "val_acc" in err
    assert re.search(r"\d+ per-site keys such as act/", err)


def test_site_means_average_the_per_site_values_of_the_store(workdir):
    store = RunStore(workdir, create=False)
    rows = run_rows(store)
    trainable = next(r for r in rows if "trainable" in r["activation"])
    history = store.history(trainable["run_id"])
    store.close()
    means = with_site_means(history)
    for raw, rec in zip(history, means):
        per_site = [raw[f"act/acts.{i}/theta_deg"] for i in range(2)]
        assert rec["theta_deg"] == pytest.approx(np.mean(per_site), rel=1e-12)
        assert "t" not in rec  # theta_relu logs no t
    assert means[0]["theta_deg"] != means[-1]["theta_deg"]  # the trained angles moved


def test_scheduled_theta_reaches_zero_and_anneal_t_reaches_one(workdir):
    store = RunStore(workdir, create=False)
    final = {r["activation"]: with_site_means(store.history(r["run_id"]))[-1] for r in run_rows(store)}
    store.close()
    scheduled = next(v for k, v in final.items() if "schedule=linear(end=0" in k)
    assert scheduled["theta_deg"] == 0.0
    assert next(v for k, v in final.items() if k.startswith("anneal"))["t"] == 1.0


def test_report_has_an_annealing_section_with_youden_plot_and_curves(workdir):
    page = write_report(workdir).read_text()
    match = re.search(r"<h2>Annealing — tiny: [^<]*</h2>(.*?)(<h2>|</body>)", page, re.S)
    assert match, "no annealing section"
    assert match.group(1).count("<img") == 2
    assert 'alt="Youden plot"' in match.group(1) and 'alt="curves"' in match.group(1)


def test_report_of_runs_without_annealing_has_no_annealing_section(tmp_path):
    _grid(tmp_path / "plain", ["relu"], epochs=1)
    store = RunStore(tmp_path / "plain", create=False)
    assert annealing_section(store, run_rows(store)) == []
    store.close()
    assert "Annealing —" not in write_report(tmp_path / "plain").read_text()


@pytest.mark.parametrize(("spec", "expected"), [
    ("theta_relu(mode=fixed,theta=0)", True), ("anneal(base=gelu)", True),
    ("max(x,anneal(base=relu))", True), ("relu", False), ("annealed_thing", False),
])
def test_is_annealing_recognises_theta_relu_and_anneal_anywhere_in_a_spec(spec, expected):
    assert is_annealing(spec) is expected


def test_plot_needs_a_kind():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["plot"])
