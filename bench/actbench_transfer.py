"""Do Act-Bench's best functions transfer? Re-training off the proxy (issue 12, item 5).

Act-Bench-MNIST10k ranks functions on a small proxy (``cnn(channels=8)``, 2
epochs, one seed, validation accuracy). Here the 5 best functions of the
committed table, every baseline (elu, relu, selu, sigmoid, softplus, softsign,
swish, tanh) and so ReLU, are trained again elsewhere, 3 seeds each:

* ``digits`` (sklearn's 8x8 handwritten digits) with the full-width ``cnn`` (without
  its 2x2 pool, which 8x8 images are too small for), 5 epochs;
* ``titanic`` with the accuracy bench's ``mlp(widths=[32,32])`` (a CNN does not
  apply to a table), 30 epochs as there.

Each function is compared with ReLU by ``actlab compare`` (seed-paired,
Holm-corrected over the functions of a data set), and the proxy's ranking with
the new one by Spearman correlation.

    python bench/actbench_transfer.py [--workers 2] [--top 5] [--seeds 3]
    python bench/actbench_transfer.py --quick     # smoke: top 2, 1 seed, 1 epoch

Writes ``bench/results/actbench_transfer.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from actlab.experiments import parse_config, run_experiment
from actlab.experiments.compare import compare
from actlab.experiments.results import export, fmt_pm
from actlab.search import BASELINES, load_benchmark

ROOT = Path(__file__).parent
TABLE = ROOT / "results" / "actbench_mnist10k.csv"
SETTINGS = {  # dataset: (model, epochs, batch, lr)
    "digits": ("cnn(pool=false)", 5, 32, 2e-3),  # 8x8 images: the full-width cnn without its pool
    "titanic": ("mlp(widths=[32,32])", 30, 32, 3e-3),
}


def chosen(top: int) -> tuple[list[str], dict[str, float], int]:
    """The ``top`` best functions by proxy validation accuracy, then every baseline; their proxy accuracy;
    how many functions the table has."""
    bench = load_benchmark(TABLE)
    acc = dict(zip(bench.names, bench.metric("val_acc")))
    base = {r["name"]: r["baseline"] for r in bench.rows if r["baseline"]}
    finite = sorted((n for n in bench.names if np.isfinite(acc[n]) and n not in base), key=lambda n: -acc[n])
    names = finite[:top] + [base_name for base_name in BASELINES]
    proxy = {n: acc[n] for n in finite[:top]} | {b: acc[rep] for rep, b in base.items()}
    return names, proxy, len(bench.names)


def run(names: list[str], seeds: int, workers: int, quick: bool, workdir: Path) -> tuple[list[dict], list[dict]]:
    summary, tests = [], []
    for dataset, (model, epochs, batch, lr) in SETTINGS.items():
        cfg = parse_config({"name": f"transfer_{dataset}", "datasets": [dataset], "models": [model],
                            "activations": names, "seeds": list(range(seeds)), "epochs": 1 if quick else epochs,
                            "batch_size": batch, "lr": lr}, source="actbench transfer")
        store = run_experiment(cfg, workdir, workers=workers)
        rows, table = export(store)
        # the work directory keeps earlier runs (a partial table's top 5): only this config's functions count
        rows = [r for r in rows if r["experiment"] == cfg.name and r["activation"] in names]
        summary += [s for s in table if s["experiment"] == cfg.name and s["activation"] in names]
        tests += [c.as_dict() for c in compare(rows, baseline="relu")]
        store.close()
    return summary, tests


def markdown(summary: list[dict], tests: list[dict], proxy: dict[str, float], top: int, table_size: int) -> str:
    partial = "" if table_size >= 2951 else f" (of the {table_size:,} functions trained so far, of 2,951)"
    lines = ["# Act-Bench transfer: proxy winners re-trained elsewhere", "",
             f"The {top} best functions{partial} of Act-Bench-MNIST10k (proxy: `cnn(channels=8)`, 2 epochs, seed 0, "
             "validation accuracy on 1,000 images) and every baseline, trained again: "
             + "; ".join(f"{d}: `{m}`, {e} epochs" for d, (m, e, _, _) in SETTINGS.items())
             + ". Test accuracy, mean ± std over seeds; Δ against ReLU seed-paired with a 95 % interval and "
               "Holm-corrected p.", "",
             "| dataset | function | proxy val acc % | seeds | test acc % | Δ vs relu pp | 95 % CI | p (Holm) | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    vs = {(c["experiment"], c["activation"]): c for c in tests}
    for r in summary:
        c = vs.get((r["experiment"], r["activation"]))
        delta = "—" if c is None else f"{100 * c['diff']:+.2f}"
        ci = "—" if c is None or c["ci_low"] != c["ci_low"] else f"[{100 * c['ci_low']:+.2f}, {100 * c['ci_high']:+.2f}]"
        p = "—" if c is None or c["p_holm"] != c["p_holm"] else f"{c['p_holm']:.3g}"
        lines.append(f"| {r['experiment'].removeprefix('transfer_')} | `{r['activation']}` | {100 * proxy.get(r['activation'], float('nan')):.1f} | "
                     f"{r['seeds']}{' (' + str(r['diverged']) + ' diverged)' if r['diverged'] else ''} | "
                     f"{fmt_pm(r['test_acc_mean'], r['test_acc_std'])} | {delta} | {ci} | {p} | "
                     f"{'' if c is None else c['verdict']} |")
    lines += ["", "Rank agreement between the proxy and each data set (Spearman over these functions):", ""]
    for dataset in SETTINGS:
        rows = [r for r in summary if r["experiment"] == f"transfer_{dataset}" and r["activation"] in proxy]
        if len(rows) > 2:
            rho = spearmanr([proxy[r["activation"]] for r in rows], [r["test_acc_mean"] for r in rows]).statistic
            lines.append(f"- {dataset}: ρ = {rho:+.2f} over {len(rows)} functions")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "actbench_transfer")
    args = parser.parse_args()
    torch.set_num_threads(1)
    top, seeds = (2, 1) if args.quick else (args.top, args.seeds)
    names, proxy, table_size = chosen(top)
    workdir = args.workdir / ("quick" if args.quick else "full")
    summary, tests = run(names, seeds, args.workers, args.quick, workdir)
    text = markdown(summary, tests, proxy, top, table_size)
    results = workdir if args.quick else ROOT / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "actbench_transfer.json").write_text(json.dumps(
        {"functions": names, "table_size": table_size, "proxy_val_acc": proxy, "settings": SETTINGS,
         "summary": summary, "vs_relu": tests},
        indent=2))
    (results / "actbench_transfer.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
