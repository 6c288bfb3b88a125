"""A run killed after epoch k continues at epoch k+1, with the results of a run never stopped."""

import pytest

from actlab.experiments import parse_config, run_experiment
from actlab.experiments import runner
from actlab.store import RunStore

SPEC = {"name": "r", "datasets": ["moons"], "models": ["mlp(widths=[16])"], "activations": ["slaf(degree=3)"],
        "seeds": [3], "epochs": 4, "lr": 0.01}


def _final(workdir):
    store = RunStore(workdir)
    (run,) = store.runs()
    history = [{k: v for k, v in h.items() if k != "time"} for h in store.history(run["run_id"])]
    store.close()
    return run["status"], run["test"], history


def test_a_run_killed_after_epoch_2_resumes_at_epoch_3_with_identical_results(tmp_path, monkeypatch):
    cfg = parse_config(SPEC)
    run_experiment(cfg, tmp_path / "whole", progress=False).close()

    real_log = RunStore.log_epoch

    def killed_after_epoch_2(self, rid, record):
        real_log(self, rid, record)
        if record["epoch"] == 2:
            raise KeyboardInterrupt  # the process dies here: epoch 2 and its state are on disk

    monkeypatch.setattr(RunStore, "log_epoch", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(RunStore, "log_epoch", real_log)
    store = RunStore(tmp_path / "cut")
    store.db.execute("UPDATE runs SET lease=0")  # the dead process's claim has run out
    store.close()

    resumed_from = []
    real_train = runner.train_run
    monkeypatch.setattr(runner, "train_run", lambda *a, resume=None, **k: resumed_from.append(
        resume and resume["epoch"]) or real_train(*a, resume=resume, **k))
    run_experiment(cfg, tmp_path / "cut", progress=False).close()
    assert resumed_from == [2]
    assert _final(tmp_path / "cut") == _final(tmp_path / "whole")
    assert not list((tmp_path / "cut" / "checkpoints").glob("*.resume.pt"))
