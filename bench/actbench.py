"""Act-Bench-MNIST10k: train every unique function of the default search space once.

The mini benchmark's settings (``cnn(channels=8)``, 2 epochs, batch 128, Adam
2e-3, seed 0) on every unique finite function (exact equivalence), through the
search state, so workers never train a function twice and a killed worker's
function is retried.

The committed table ``bench/results/actbench_mnist10k.csv`` is the source of
truth: a run imports its finished rows into the work directory (which may be
gone on a new machine) before training, and rewrites it every ``--export-every``
seconds and at the end, together with the copy shipped in the package
(``actlab/search/data``, read by ``actlab.search.load_benchmark``). Restarting after a kill, here or elsewhere, is the same
command:

    python bench/actbench.py --workers 2        # train what is left (resumes)
    python bench/actbench.py --export           # only rewrite the CSV from the work directory
    python bench/actbench.py --noise            # seed noise: a fixed sample of 150 functions, seeds 1 and 2

Seed noise: the baselines and functions drawn with seed 1 from the rest (150 in
all), trained again with seeds 1 and 2 into ``actbench_mnist10k_seeds.csv``
(one row per function and seed), resumable in the same way.

Order: the baselines first, then the other functions of the seed-noise sample
(drawn uniformly, so the seed noise can be computed early), then the rest in
one fixed random order (seed 0), so a partial table is a uniform sample of the
space. A restart re-queues what is still pending in this order.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from actlab.search import BASELINES
from actlab.search.benchmark import ACTBENCH_SETTINGS, SHIPPED, write_table
from actlab.search.loop import make_backend
from actlab.search.state import SearchState
from actlab.search.workers import train_function

ROOT = Path(__file__).parent
WORKDIR = ROOT / "out" / "actbench"
TABLE = ROOT / "results" / "actbench_mnist10k.csv"
SETTINGS = ACTBENCH_SETTINGS
NOISE_TABLE = ROOT / "results" / "actbench_mnist10k_seeds.csv"
NOISE_SEEDS, NOISE_SIZE = (1, 2), 150
DONE = ("done", "diverged", "failed")


def order(state: SearchState, seed: int = 0) -> list[str]:
    """Baselines' representatives, the seed-noise sample, then every other function in a fixed random order."""
    base = list(dict.fromkeys([state.representative(b) for b in BASELINES] + noise_sample(state)))
    rest = [n for n in state.names() if n not in set(base)]
    return base + [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]


def noise_sample(state: SearchState, n: int = NOISE_SIZE) -> list[str]:
    """The baselines, then functions drawn uniformly (seed 1) from the rest: the seed-noise sample."""
    base = list(dict.fromkeys(state.representative(b) for b in BASELINES))
    rest = sorted(set(state.names()) - set(base))
    return base + [rest[i] for i in sorted(np.random.default_rng(1).choice(len(rest), n - len(base), replace=False))]


def _num(v: str, kind=float):
    return None if v in ("", None) else kind(v)


def import_table(state: SearchState, path: Path = TABLE) -> int:
    """Copy the committed table's finished rows into a work directory that lacks them."""
    if not path.exists():
        return 0
    rows = [r for r in csv.DictReader(path.open()) if r["status"] in DONE and int(r["seed"]) == state.settings.seed]
    have = {r["rep"] for r in state.rows(DONE)}
    todo = [r for r in rows if r["name"] not in have]
    with state.transaction() as db:
        top = db.execute("SELECT COALESCE(MAX(finished), 0) FROM search_functions").fetchone()[0]
        for i, r in enumerate(todo, 1):
            db.execute("UPDATE search_functions SET status=?, val_acc=?, test_acc=?, val_loss=?, train_time=?,"
                       " diverged_epoch=?, attempts=?, error=?, finished=?, updated=? WHERE rep=?",
                       (r["status"], _num(r["val_acc"]), _num(r["test_acc"]), _num(r["val_loss"]),
                        _num(r["train_time_s"]) or 0.0, _num(r["diverged_epoch"], int), int(r["attempts"]),
                        r["error"] or None, top + i, time.time(), r["name"]))
    return len(todo)


def export_table(state: SearchState, path: Path = TABLE) -> int:
    """Write every finished function (index order) atomically; returns the row count."""
    aliases = {state.representative(b): b for b in BASELINES}
    counts = Counter(r for (r,) in state.db.execute("SELECT rep FROM search_names"))
    rows = [{"name": r["rep"], "baseline": aliases.get(r["rep"], ""), "equivalent_names": counts[r["rep"]],
             "status": r["status"], "val_acc": r["val_acc"], "test_acc": r["test_acc"], "val_loss": r["val_loss"],
             "train_time_s": None if r["train_time"] is None else round(r["train_time"], 3),
             "diverged_epoch": r["diverged_epoch"], "attempts": r["attempts"], "seed": state.settings.seed,
             "error": (r["error"] or "").replace("\n", " ")}
            for r in state.rows(DONE) if r["status"] != "failed" or r["attempts"] >= state.settings.max_attempts]
    if path == NOISE_TABLE and path.exists():  # one file for every seed: keep the other seeds' rows
        rows = [r for r in csv.DictReader(path.open()) if int(r["seed"]) != state.settings.seed] + rows
    write_table(rows, path)
    if path == TABLE:
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHIPPED)
    return len(rows)


def train(state: SearchState, names: list[str], table: Path, workers: int, export_every: float) -> None:
    with state.transaction() as db:  # what is still pending follows the current order
        db.execute("UPDATE search_functions SET queued=NULL WHERE status='pending'")
    state.enqueue(names, "actbench")
    total = len(names)
    backend = make_backend(state.workdir, train_function, workers=workers)
    start = last = time.time()
    done0 = state.finished_count()
    try:
        while state.open_work():
            backend.step(state)
            if time.time() - last > export_every:
                last = time.time()
                n = export_table(state, table)
                rate = (state.finished_count() - done0) / max(time.time() - start, 1e-9) * 3600
                print(f"[{time.strftime('%H:%M:%S')}] {n}/{total} in the table, {state.counts()}, "
                      f"{rate:.0f}/h this run", flush=True)
    finally:
        backend.close(state)
        print(f"exported {export_table(state, table)} rows to {table}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one thread each (0: in process)")
    parser.add_argument("--export-every", type=float, default=300.0, help="seconds between CSV rewrites")
    parser.add_argument("--export", action="store_true", help="rewrite the CSV from the work directory and stop")
    parser.add_argument("--noise", action="store_true", help="train the seed-noise sample (seeds 1 and 2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # kill (SIGTERM) ends like Ctrl-C: the finished rows are exported and the workers stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    jobs = ([(WORKDIR.with_name(f"actbench_seed{s}"), SETTINGS.model_copy(update={"seed": s}), NOISE_TABLE)
             for s in NOISE_SEEDS] if args.noise else [(WORKDIR, SETTINGS, TABLE)])
    for workdir, settings, table in jobs:
        state = SearchState.init(workdir, settings)
        print(f"seed {settings.seed}: imported {import_table(state, table)} finished rows from {table}", flush=True)
        if args.export:
            print(f"exported {export_table(state, table)} rows", flush=True)
            continue
        names = noise_sample(state) if args.noise else order(state)
        train(state, names, table, args.workers, args.export_every)


if __name__ == "__main__":
    main()
