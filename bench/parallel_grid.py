"""Wall time of one 24-run grid trained sequentially and on 2 worker processes, and equal results.

The grid: digits MLP (widths 32, 32), 4 activations x 6 seeds, 10 epochs. Both
runs use one thread per training process; the results must agree bit for bit.

    python bench/parallel_grid.py [--workers 2]

Writes ``bench/results/parallel_grid.{json,md}`` with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import cpu_info  # noqa: E402

from actlab.experiments import parse_config, run_experiment  # noqa: E402
from actlab.store import RunStore  # noqa: E402

SPEC = {"name": "grid24", "datasets": ["digits"], "models": ["mlp(widths=[32,32])"],
        "activations": ["relu", "tanh", "slaf(degree=4,basis=chebyshev)", "rational"], "seeds": [0, 1, 2, 3, 4, 5],
        "epochs": 10, "batch_size": 32, "lr": 3e-3}


def timed(workdir: Path, workers: int) -> tuple[float, dict]:
    start = time.perf_counter()
    store = run_experiment(parse_config(SPEC), workdir, progress=False, workers=workers)
    seconds = time.perf_counter() - start
    results = {r["run_id"]: (r["status"], r["test"]) for r in store.runs()}
    store.close()
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        seq, seq_res = timed(Path(tmp) / "seq", 0)
        par, par_res = timed(Path(tmp) / "par", args.workers)
    runs = len(seq_res)
    same = seq_res == par_res
    res = {"cpu": cpu_info(), "grid": SPEC, "runs": runs, "sequential_s": seq, "workers": args.workers,
           "parallel_s": par, "speedup": seq / par, "results_identical": same}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parallel_grid.json").write_text(json.dumps(res, indent=2))
    md = (f"# One {runs}-run grid, sequential vs {args.workers} worker processes\n\n"
          f"CPU: {res['cpu']['name']} ({res['cpu']['cores']} cores); digits MLP, 4 activations x 6 seeds, "
          f"10 epochs, one thread per training process.\n\n| mode | wall s |\n|---|---|\n"
          f"| sequential (in process) | {seq:.1f} |\n| {args.workers} workers | {par:.1f} |\n\n"
          f"Speed-up {seq / par:.2f}x; results bit-identical: {'yes' if same else 'NO'}.\n")
    (args.out / "parallel_grid.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
