"""Test accuracy of fixed and learnable activations, same epochs, 3 seeds (issue: learnable families).

Runs a grid through the experiment runner (resumable: re-running skips finished
runs) and writes ``bench/results/accuracy.{json,md}`` and a bar plot:

    python bench/accuracy.py                 # full: mnist10k CNN, titanic and banknote MLPs, 3 seeds
    python bench/accuracy.py --quick         # smoke: 1 seed, 1 epoch, tabular only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import actlab
from actlab.experiments import parse_config, run_experiment
from actlab.plots import bar_chart
from actlab.experiments.results import export, fmt_pm

FIXED = ["relu", "sigmoid", "tanh"]
LEARNED = [
    "slaf(degree=4,basis=chebyshev)",
    "slaf(degree=4,basis=monomial,standardize=true)",
    "slaf(degree=4,basis=chebyshev,hybrid=true)",
    "spline(knots=32)",
    "rational",
    "subnet(hidden=8)",
]
SETTINGS = {
    # dataset: (model, epochs, batch size, learning rate)
    "mnist10k": ("cnn", 4, 64, 2e-3),
    "titanic": ("mlp(widths=[32,32])", 30, 32, 3e-3),
    "banknote": ("mlp(widths=[16,16])", 30, 32, 3e-3),
}
OUT = Path(__file__).parent


def run(quick: bool, workdir: Path) -> list[dict]:
    summary = []
    for dataset, (model, epochs, batch, lr) in SETTINGS.items():
        if quick and dataset == "mnist10k":
            continue
        cfg = parse_config({
            "name": f"accuracy_{dataset}", "datasets": [dataset], "models": [model],
            "activations": FIXED + LEARNED, "seeds": [0] if quick else [0, 1, 2],
            "epochs": 1 if quick else epochs, "batch_size": batch, "lr": lr,
        }, source="accuracy bench")
        store = run_experiment(cfg, workdir)
        # one experiment per dataset; compressed copies (bench/compress_accuracy.py) have their own table
        summary += [s for s in export(store)[1] if s["experiment"] == cfg.name and " -> " not in s["activation"]]
        store.close()
    return summary


def write(summary: list[dict], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "accuracy.json").write_text(json.dumps(summary, indent=2))
    epochs = ", ".join(f"{d} {e}" for d, (_, e, _, _) in SETTINGS.items())
    lines = [f"Test accuracy, mean ± std over seeds 0-2; Adam, softmax cross-entropy; epochs: {epochs}. "
             "'train s' is wall-clock time on a shared 2-core machine, a rough guide only "
             "(bench/activation_speed.py measures speed).", "",
             "| dataset | model | activation | seeds | test acc % (mean ± std) | macro F1 % | params | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['activation']} | {r['seeds']}"
                     f"{' (' + str(r['diverged']) + ' diverged)' if r['diverged'] else ''} | "
                     f"{fmt_pm(r['test_acc_mean'], r['test_acc_std'])} | {fmt_pm(r['test_f1_mean'], r['test_f1_std'])}"
                     f" | {r['params']:,} | {r['train_time_mean']:.1f} |")
    (results / "accuracy.md").write_text("\n".join(lines) + "\n")
    for dataset in dict.fromkeys(r["dataset"] for r in summary):
        rows = [r for r in summary if r["dataset"] == dataset]
        fig = bar_chart([r["activation"] for r in rows], [100 * r["test_acc_mean"] for r in rows],
                        [100 * r["test_acc_std"] for r in rows], "test accuracy %", dataset)
        fig.savefig(results / f"accuracy_{rows[0]['experiment'].removeprefix('accuracy_')}.png", dpi=90)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=OUT / "out" / "accuracy")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert actlab.ACTIVATIONS  # registers every family
    workdir = args.workdir / ("quick" if args.quick else "full")
    summary = run(args.quick, workdir)
    write(summary, workdir if args.quick else OUT / "results")  # only full runs are committed


if __name__ == "__main__":
    main()
