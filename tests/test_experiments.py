"""Experiment configs, the resumable runner, results, report and the CLI."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actlab.cli import main
from actlab.errors import ActlabError
from actlab.experiments import load_config, run_experiment, write_report
from actlab.experiments.results import export
from actlab.store import RunStore

CONFIG = """
name = "tiny"
datasets = ["moons"]
models = ["mlp(widths=[16])"]
activations = ["relu", "tanh"]
seeds = [0, 1]
epochs = {epochs}
batch_size = 32
lr = 0.01
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_grid_runs_into_store_and_results_give_mean_and_std(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG.format(epochs=3)))
    store = run_experiment(cfg, tmp_path / "work", progress=False)
    rows, summary = export(store)
    assert len(rows) == 4 and all(r["status"] == "done" and r["epochs"] == 3 for r in rows)
    assert {s["activation"] for s in summary} == {"relu", "tanh"}
    assert all(s["seeds"] == 2 and s["test_acc_std"] >= 0 for s in summary)
    assert (tmp_path / "work" / "summary.csv").read_text().count("\n") == 3
    assert list((tmp_path / "work" / "tensorboard" / "tiny").glob("*/seed*/events.out.tfevents*"))
    report = write_report(tmp_path / "work").read_text()
    assert "<img" in report and "relu" in report and "± " in report


def test_rerun_skips_finished_runs(tmp_path):
    cfg = load_config(write(tmp_path, CONFIG.format(epochs=1)))
    store = run_experiment(cfg, tmp_path / "w", progress=False)
    stamps = {r["run_id"]: r["updated"] for r in store.runs()}
    store = run_experiment(cfg, tmp_path / "w", progress=False)
    assert {r["run_id"]: r["updated"] for r in store.runs()} == stamps


def test_killed_run_resumes_without_losing_committed_results(tmp_path):
    cfg_path = write(tmp_path, CONFIG.format(epochs=40).replace('"moons"', '"spirals"'))
    work = tmp_path / "w"
    cmd = [sys.executable, "-m", "actlab.cli", "run", str(cfg_path), "--workdir", str(work), "--no-progress",
           "--no-report"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # two threads on two busy cores slow torch down badly
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    db = work / "actlab.sqlite"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # kill once one run is done and the next is mid-way
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=5) as con:
                        done = con.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
                        mid = con.execute(
                            "SELECT count(*) FROM epochs JOIN runs USING(run_id) WHERE status='running'"
                        ).fetchone()[0]
                except sqlite3.OperationalError:
                    done = mid = 0
                if done >= 1 and mid >= 2:
                    break
            time.sleep(0.02)
        else:
            pytest.fail("the run never reached the state to interrupt")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = RunStore(work)
    before = {r["run_id"]: (r["status"], r["updated"]) for r in store.runs()}
    assert "running" in {s for s, _ in before.values()}
    store.close()
    cfg = load_config(cfg_path)
    store = run_experiment(cfg, work, progress=False)
    after = store.runs()
    assert len(after) == 4 and all(r["status"] == "done" for r in after)
    for r in after:
        assert [h["epoch"] for h in store.history(r["run_id"])] == list(range(1, 41))
        if before.get(r["run_id"], ("",))[0] == "done":  # finished work is not redone
            assert r["updated"] == before[r["run_id"]][1]


@pytest.mark.parametrize(
    "change, message",
    [
        (("epochs = 3", "epoch = 3"), "unknown key 'epoch' (did you mean 'epochs'?)"),
        (("epochs = 3", 'epochs = "three"'), "key 'epochs'"),
        (("epochs = 3", "epochs = 0"), "key 'epochs'"),
        (('"relu", "tanh"', '"relu", "tahn"'), "key 'activations': item 1: unknown activation 'tahn'. Did you mean 'tanh'?"),
        (('"relu", "tanh"', '"relu", "max(x"'), "key 'activations': item 1: malformed spec"),
        (('["moons"]', '["moon"]'), "Did you mean 'moons'?"),
        (('["mlp(widths=[16])"]', '["mpl"]'), "Did you mean 'mlp'?"),
        (("lr = 0.01", "lr = -1"), "key 'lr'"),
        (("seeds = [0, 1]", "seeds = []"), "key 'seeds'"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, change, message):
    text = CONFIG.format(epochs=3).replace(*change)
    with pytest.raises(ActlabError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)


def test_missing_and_malformed_config_files_are_clear_errors(tmp_path):
    with pytest.raises(ActlabError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ActlabError, match="not valid TOML"):
        load_config(write(tmp_path, "name = [unclosed"))


def test_cli_reports_user_errors_on_one_line_with_exit_code_2(tmp_path, capsys):
    bad = write(tmp_path, CONFIG.format(epochs=3).replace("epochs = 3", "epoch = 3"))
    assert main(["run", str(bad), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("actlab: error:") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["results", str(tmp_path / "missing")]) == 2
    assert main(["list", "activatons"]) == 2


def test_cli_run_then_results_and_report(tmp_path, capsys):
    cfg = write(tmp_path, CONFIG.format(epochs=1))
    assert main(["run", str(cfg), "--workdir", str(tmp_path / "w"), "--no-progress"]) == 0
    assert (tmp_path / "w" / "report.html").exists() and (tmp_path / "w" / "config.resolved.json").exists()
    assert main(["results", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    assert "relu" in out and "tanh" in out and "±" in out


def test_demo_runs_the_whole_pipeline_on_a_tiny_config(tmp_path, capsys):
    tiny = write(tmp_path, CONFIG.format(epochs=2).replace('"relu", "tanh"', '"relu", "slaf(degree=2)"')
                 .replace("seeds = [0, 1]", "seeds = [0]"))
    work = tmp_path / "demo"
    assert main(["demo", "--config", str(tiny), "--workdir", str(work), "--epochs", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "actlab demo — 1 epochs" in out and "report:" in out
    resolved = json.loads((work / "config.resolved.json").read_text())
    assert resolved["train"]["epochs"] == 1 and resolved["activations"] == ["relu", "slaf(degree=2)"]
    rows, _ = export(RunStore(work))
    assert sorted(r["activation"] for r in rows) == ["relu", "slaf(degree=2)", "slaf(degree=2) -> pwl(knots=64)"]
    assert all(r["status"] == "done" for r in rows) and (work / "report.html").exists()


def test_flat_and_nested_training_keys_give_the_same_config(tmp_path):
    flat = load_config(write(tmp_path, CONFIG.format(epochs=3)))
    nested = CONFIG.format(epochs=3).replace("epochs = 3\nbatch_size = 32\nlr = 0.01\n", "")
    nested = load_config(write(tmp_path, nested + "[train]\nepochs = 3\nbatch_size = 32\nlr = 0.01\n", "n.toml"))
    assert flat == nested and flat.train.epochs == 3 and flat.train.batch_size == 32
    both = CONFIG.format(epochs=3) + "[train]\nepochs = 4\n"
    with pytest.raises(ActlabError, match="'epochs' is given both at the top level and in \\[train\\]"):
        load_config(write(tmp_path, both, "b.toml"))
