"""Test accuracy of fixed and learnable activations over the same epochs, 10 seeds: which beat ReLU?

Runs a grid through the experiment runner on parallel workers (resumable:
re-running skips finished runs) and writes ``bench/results/accuracy.{json,md}``
and a bar plot per dataset. Each activation is compared with ReLU by
``actlab compare``: seed-paired mean difference with a 95 % interval and a
p-value Holm-corrected over the activations of the dataset.

    python bench/accuracy.py                 # full: mnist10k CNN, titanic, banknote, digits MLPs, 10 seeds
    python bench/accuracy.py --workers 2     # worker processes (default 2; 0 trains in this process)
    python bench/accuracy.py --quick         # smoke: 1 seed, 1 epoch, tabular only
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import actlab
from actlab.experiments import parse_config, run_experiment
from actlab.experiments.compare import compare
from actlab.experiments.results import export, fmt_pm
from actlab.plots import bar_chart

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
    "digits": ("mlp(widths=[32,32])", 30, 32, 3e-3),  # as bench/pareto.py's digits sweep
}
SEEDS = 10
OUT = Path(__file__).parent


def run(quick: bool, workdir: Path, seeds: int, workers: int) -> tuple[list[dict], list[dict]]:
    summary, tests = [], []
    for dataset, (model, epochs, batch, lr) in SETTINGS.items():
        if quick and dataset == "mnist10k":
            continue
        cfg = parse_config({
            "name": f"accuracy_{dataset}", "datasets": [dataset], "models": [model],
            "activations": FIXED + LEARNED, "seeds": [0] if quick else list(range(seeds)),
            "epochs": 1 if quick else epochs, "batch_size": batch, "lr": lr,
        }, source="accuracy bench")
        store = run_experiment(cfg, workdir, workers=workers)
        # one experiment per dataset; compressed copies (bench/compress_accuracy.py) have their own table
        rows, table = export(store)
        rows = [r for r in rows if r["experiment"] == cfg.name and " -> " not in r["activation"]]
        summary += [s for s in table if s["experiment"] == cfg.name and " -> " not in s["activation"]]
        tests += [c.as_dict() for c in compare(rows, baseline="relu")]
        store.close()
    return summary, tests


def write(summary: list[dict], tests: list[dict], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    (results / "accuracy.json").write_text(json.dumps({"summary": summary, "vs_relu": tests}, indent=2))
    epochs = ", ".join(f"{d} {e}" for d, (_, e, _, _) in SETTINGS.items())
    seeds = max((r["seeds"] for r in summary), default=0)
    lines = [f"Test accuracy, mean ± std over {seeds} seeds; Adam, softmax cross-entropy; epochs: {epochs}. "
             "'train s' is wall-clock time on a shared 2-core machine, a rough guide only "
             "(bench/activation_speed.py measures speed).", "",
             "| dataset | model | activation | seeds | test acc % (mean ± std) | macro F1 % | params | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary:
        lines.append(f"| {r['dataset']} | {r['model']} | {r['activation']} | {r['seeds']}"
                     f"{' (' + str(r['diverged']) + ' diverged)' if r['diverged'] else ''} | "
                     f"{fmt_pm(r['test_acc_mean'], r['test_acc_std'])} | {fmt_pm(r['test_f1_mean'], r['test_f1_std'])}"
                     f" | {r['params']:,} | {r['train_time_mean']:.1f} |")
    lines += ["", "## Against ReLU (actlab compare: seed-paired t, 95 % interval, Holm over each dataset's "
              "activations)", "", "| dataset | activation | n | Δ test acc pp | 95 % CI | bootstrap 95 % | p (Holm) "
              "| verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in tests:
        p = "—" if c["p_holm"] != c["p_holm"] else f"{c['p_holm']:.3g}"
        lines.append(f"| {c['dataset']} | {c['activation']} | {c['n']} | {100 * c['diff']:+.2f} | "
                     f"{_interval(c['ci_low'], c['ci_high'])} | {_interval(c['boot_low'], c['boot_high'])} | {p} | "
                     f"{c['verdict']} |")
    (results / "accuracy.md").write_text("\n".join(lines) + "\n")
    for dataset in dict.fromkeys(r["dataset"] for r in summary):
        rows = [r for r in summary if r["dataset"] == dataset]
        fig = bar_chart([r["activation"] for r in rows], [100 * r["test_acc_mean"] for r in rows],
                        [100 * r["test_acc_std"] for r in rows], "test accuracy %", dataset)
        fig.savefig(results / f"accuracy_{rows[0]['experiment'].removeprefix('accuracy_')}.png", dpi=90)
    print("\n".join(lines))


def _interval(lo: float, hi: float) -> str:
    return "—" if lo != lo else f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=OUT / "out" / "accuracy")
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: train in this process)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert actlab.ACTIVATIONS  # registers every family
    workdir = args.workdir / ("quick" if args.quick else "full")
    summary, tests = run(args.quick, workdir, args.seeds, args.workers)
    write(summary, tests, workdir if args.quick else OUT / "results")  # only full runs are committed


if __name__ == "__main__":
    main()
