"""Experiment files that would misbehave are refused (or repaired) before any training."""

import pytest

from actlab.cli import main
from actlab.errors import ActlabError
from actlab.experiments import parse_config
from actlab.experiments.config import load_config

BASE = {"name": "g", "datasets": ["moons"], "models": ["mlp"], "activations": ["relu"], "epochs": 1}


@pytest.mark.parametrize("lr", [1e300, float("inf"), float("nan"), 0.0, -1.0])
def test_absurd_or_non_finite_learning_rates_are_refused(lr):
    with pytest.raises(ActlabError, match="'lr'"):
        parse_config(BASE | {"lr": lr})


@pytest.mark.parametrize("name", ["..", ".", "a/b"])
def test_a_name_that_would_write_outside_runs_is_refused(name):
    with pytest.raises(ActlabError, match="'name'"):
        parse_config(BASE | {"name": name})


def test_repeated_seeds_and_activations_are_trained_once_with_a_warning():
    with pytest.warns(UserWarning, match="seeds: 0 given more than once"):
        cfg = parse_config(BASE | {"activations": ["relu", "relu"], "seeds": [0, 0, 1]})
    assert cfg.seeds == [0, 1] and cfg.activations == ["relu"]


def test_a_config_that_is_not_utf8_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "\xff\xfe"\n')
    with pytest.raises(ActlabError, match="not UTF-8"):
        load_config(path)
    assert main(["run", str(path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_run_takes_a_data_dir_for_datasets_read_from_disk(tmp_path, capsys):
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\ndatasets = ["mnist"]\nmodels = ["mlp"]\nactivations = ["relu"]\nepochs = 1\n')
    assert main(["run", str(path), "--workdir", str(tmp_path / "w"), "--data-dir", str(tmp_path / "nowhere"),
                 "--no-progress", "--no-report"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_a_read_only_work_directory_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    from actlab.experiments import results

    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "r"\ndatasets = ["moons"]\nmodels = ["mlp"]\nactivations = ["relu"]\nepochs = 1\n')
    assert main(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--no-progress", "--no-report"]) == 0

    def read_only(rows, path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(results, "write_csv", read_only)
    capsys.readouterr()
    assert main(["results", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write" in err and "runs.csv" in err


def test_a_restarted_run_keeps_one_tensorboard_event_file(tmp_path):
    import torch

    from actlab.experiments.tensorboard import TensorBoardLogger

    model = torch.nn.Linear(2, 2)
    for _ in range(3):  # three attempts of one run
        tb = TensorBoardLogger(tmp_path / "tb", model)
        tb.log({"epoch": 1, "val_acc": 0.5})
        tb.close()
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1


PLUGIN = """
import torch
import actlab

@actlab.register_activation("plugin_softclip")
class SoftClip(torch.nn.Module):
    def forward(self, x):
        return torch.tanh(x) * 2
"""


@pytest.mark.parametrize("workers", [0, 1])
def test_a_plugins_key_makes_a_users_own_family_usable_from_actlab_run(tmp_path, monkeypatch, workers):
    (tmp_path / "my_plugin.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "p"\nplugins = ["my_plugin"]\ndatasets = ["moons"]\nmodels = ["mlp"]\n'
                   'activations = ["plugin_softclip"]\nepochs = 1\n')
    assert main(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--no-progress", "--no-report",
                 "--workers", str(workers)]) == 0
    from actlab.store import RunStore

    store = RunStore(tmp_path / "w")
    assert [r["status"] for r in store.runs()] == ["done"]
    store.close()


def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(tmp_path):
    with pytest.raises(ActlabError, match="plugin 'no_such_module' cannot be imported"):
        parse_config(BASE | {"plugins": ["no_such_module"]})


def test_runs_train_on_the_device_asked_for_and_cuda_without_cuda_is_a_one_line_error(tmp_path, capsys):
    import torch

    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "d"\ndatasets = ["moons"]\nmodels = ["mlp"]\nactivations = ["relu"]\nepochs = 1\n')
    assert main(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--no-progress", "--no-report",
                 "--device", "cpu"]) == 0
    if not torch.cuda.is_available():
        assert main(["run", str(cfg), "--workdir", str(tmp_path / "w2"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main(["run", str(cfg), "--workdir", str(tmp_path / "w3"), "--device", "tpu9"]) == 2
