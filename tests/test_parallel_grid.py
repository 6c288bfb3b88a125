"""Grids on several processes: each run trained once, bit-identical to a sequential run, no orphans."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from actlab.errors import ActlabError
from actlab.experiments import parse_config, run_experiment
from actlab.experiments.runner import grid
from actlab.store import RunStore, run_id

SPEC = {"name": "p", "datasets": ["moons"], "models": ["mlp(widths=[8])"], "activations": ["relu", "tanh"],
        "seeds": [0, 1], "epochs": 2, "lr": 0.01}


def _results(workdir) -> dict:
    store = RunStore(workdir)
    try:
        return {r["run_id"]: (r["status"], r["test"], store.history(r["run_id"])) for r in store.runs()}
    finally:
        store.close()


def test_two_worker_processes_give_the_sequential_results_bit_for_bit(tmp_path):
    cfg = parse_config(SPEC)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_experiment(cfg, tmp_path / "seq", progress=False).close()
    finally:
        torch.set_num_threads(threads)
    run_experiment(cfg, tmp_path / "par", progress=False, workers=2).close()
    seq, par = _results(tmp_path / "seq"), _results(tmp_path / "par")
    assert len(seq) == 4 and all(status == "done" for status, _, _ in par.values())
    for rid, (_, test, history) in seq.items():
        assert par[rid][1] == test  # the same floats, not merely close
        assert [h["val_loss"] for h in par[rid][2]] == [h["val_loss"] for h in history]
    assert len(list((tmp_path / "par" / "checkpoints").glob("*"))) == 4
    assert (tmp_path / "par" / "tensorboard" / "p").is_dir()


def test_claims_hand_each_run_to_one_worker_and_a_finished_run_is_never_reset(tmp_path):
    cfg = parse_config(SPEC)
    a, b = RunStore(tmp_path), RunStore(tmp_path)
    assert a.enqueue("p", grid(cfg)) == 4 and b.enqueue("p", grid(cfg)) == 4
    claims = [a.claim("p", "A", 60), b.claim("p", "B", 60), a.claim("p", "A", 60), b.claim("p", "B", 60)]
    assert len({c.run_id for c in claims}) == 4 and a.claim("p", "A", 60) is None
    first = claims[0]
    a.start_run(first.run_id, "p", first.config)
    assert a.finish_run(first.run_id, "done", test={"acc": 1.0}, claim=first)
    with pytest.raises(ActlabError, match="already finished"):
        b.start_run(first.run_id, "p", first.config)  # another process's stale to-do list
    b.enqueue("p", grid(cfg))
    assert b.status(first.run_id) == "done"
    a.close()
    b.close()


def test_a_run_whose_worker_died_is_claimed_again_and_the_stale_claim_cannot_write(tmp_path):
    cfg = parse_config(SPEC)
    store = RunStore(tmp_path)
    store.enqueue("p", grid(cfg)[:1])
    old = store.claim("p", "dead", 60)
    store.db.execute("UPDATE runs SET pid=? WHERE run_id=?", (2**22 + 12345, old.run_id))  # no such process
    new = store.claim("p", "alive", 60)
    assert new.run_id == old.run_id and new.attempt == old.attempt + 1
    assert not store.finish_run(old.run_id, "done", claim=old)
    assert store.finish_run(new.run_id, "done", claim=new) and store.status(new.run_id) == "done"
    store.close()


def _workers_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "multiprocessing.spawn" in line
            and f"parent_pid={pid}" not in line and _ppid(int(line.split()[0])) == pid]


def _ppid(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().split(")")[1].split()[1])
    except OSError:
        return -1


def _survivors(workers: list[int], seconds: float = 5.0) -> list[int]:
    """The workers still running ``seconds`` after their driver was killed (then killed, so that a
    failing test leaves nothing behind)."""
    deadline = time.time() + seconds  # workers die with their driver (PR_SET_PDEATHSIG)
    while time.time() < deadline and any(_running(w) for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if _running(w)]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    return alive


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its new parent to reap it."""
    try:
        return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_driver_leaves_no_worker_and_a_rerun_finishes_the_grid(tmp_path):
    spec = SPEC | {"activations": ["relu", "tanh", "sigmoid"], "seeds": [0, 1, 2], "epochs": 30}
    (tmp_path / "c.toml").write_text("\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in spec.items()))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "actlab.cli", "run", str(tmp_path / "c.toml"), "--workdir", str(tmp_path / "w"),
           "--workers", "2", "--no-progress", "--no-report"]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(_workers_of(driver.pid)) < 2:
        time.sleep(0.2)
    workers = _workers_of(driver.pid)
    assert len(workers) == 2
    time.sleep(1.0)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not _survivors(workers), "worker processes outlived their driver"
    done = subprocess.run(cmd[:-2] + ["--workers", "0", "--no-progress", "--no-report"], env=env, timeout=600)
    assert done.returncode == 0
    results = _results(tmp_path / "w")
    assert len(results) == 9 and all(s == "done" for s, _, _ in results.values())
    assert set(results) == {run_id(c) for c in grid(parse_config(spec))}


def test_ray_tasks_train_the_grid_once_each(tmp_path):
    pytest.importorskip("ray")
    cfg = parse_config(SPEC | {"epochs": 1})
    run_experiment(cfg, tmp_path, progress=False, workers=2, ray=True).close()
    results = _results(tmp_path)
    assert len(results) == 4 and all(s == "done" for s, _, _ in results.values())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_worker_mid_grid_loses_nothing_and_its_run_is_retried_once(tmp_path):
    spec = SPEC | {"activations": ["relu", "tanh", "sigmoid"], "seeds": [0, 1, 2], "epochs": 30}
    (tmp_path / "c.toml").write_text("\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in spec.items()))
    cmd = [sys.executable, "-m", "actlab.cli", "run", str(tmp_path / "c.toml"), "--workdir", str(tmp_path / "w"),
           "--workers", "2", "--no-progress", "--no-report"]
    driver = subprocess.Popen(cmd, env=os.environ | {"OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(_workers_of(driver.pid)) < 2:
        time.sleep(0.2)
    time.sleep(1.5)
    os.kill(_workers_of(driver.pid)[0], signal.SIGKILL)
    assert driver.wait(timeout=600) == 0
    store = RunStore(tmp_path / "w")
    runs = store.runs()
    attempts = [r["attempts"] for r in runs]
    store.close()
    assert len(runs) == 9 and all(r["status"] == "done" for r in runs)
    assert sum(attempts) <= 10  # the killed worker's run, at most, was trained a second time


def test_two_actlab_runs_on_one_directory_share_the_grid_and_survive_a_kill_of_either(tmp_path):
    spec = SPEC | {"activations": ["relu", "tanh", "sigmoid"], "seeds": [0, 1, 2], "epochs": 30}
    (tmp_path / "c.toml").write_text("\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in spec.items()))
    cmd = [sys.executable, "-m", "actlab.cli", "run", str(tmp_path / "c.toml"), "--workdir", str(tmp_path / "w"),
           "--no-progress", "--no-report"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6)
    first.kill()  # kill -9 of one of them, mid-run
    first.wait()
    assert second.wait(timeout=600) == 0
    store = RunStore(tmp_path / "w")
    runs = store.runs()
    store.close()
    assert len(runs) == 9 and all(r["status"] == "done" for r in runs)
    assert sum(r["attempts"] for r in runs) <= 10  # only the killed process's run was claimed twice


DRIVER = """
import sys, time
sys.path.insert(0, {tmp!r})
from actlab.search.loop import run_search
from actlab.search.state import SearchSettings, SearchState
from slow_eval import slow_eval
SearchState.init({work!r}, SearchSettings(schemas=["unary(x)"], dataset="moons(n_samples=200)",
                 model="mlp(widths=[4])", epochs=1)).close()
run_search({work!r}, 20, strategy="random", workers=2, evaluator=slow_eval, progress=False)
"""
SLOW = """
import time
from actlab.search.state import Outcome
def slow_eval(expr, settings):
    time.sleep(60)
    return Outcome("done", 0.5, 0.5, 1.0, 60.0)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_search_driver_leaves_no_worker_within_5_seconds(tmp_path):
    (tmp_path / "slow_eval.py").write_text(SLOW)
    (tmp_path / "driver.py").write_text(DRIVER.format(tmp=str(tmp_path), work=str(tmp_path / "s")))
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and len(_workers_of(driver.pid)) < 2:
        time.sleep(0.2)
    workers = _workers_of(driver.pid)
    assert len(workers) == 2
    time.sleep(3)  # the workers are inside their (60 s) evaluations
    driver.kill()
    driver.wait()
    assert not _survivors(workers), "search workers outlived their driver"
