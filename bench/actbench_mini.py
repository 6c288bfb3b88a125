"""A mini Act-Bench: train 300 functions of the search space, then replay searches on the table.

Bingham & Miikkulainen (NeurIPS 2023, https://arxiv.org/abs/2301.05785) train
every function of their space once and study the surrogate on that table. This
is the same on a small scale: the 8 baselines plus 292 functions drawn
uniformly (seed 0) from the unique finite functions of the default space, each
trained once (seed 0) through the search state, so the run is resumable:
killing and re-running continues where it stopped.

    python bench/actbench_mini.py             # train what is left, then analyse
    python bench/actbench_mini.py --analyse   # only the analysis (from the stored table)

Outputs: ``bench/results/actbench_mini.{csv,json,md}``, ``actbench_mini_features.npz``
and the plots ``actbench_mini_*.png``; the work directory is ``bench/out/actbench_mini``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from actlab.experiments.results import write_csv
from actlab.search import BASELINES, holdout_evaluation, make_surrogate, plot_replay, replay
from actlab.search.loop import DIVERGED_SCORE
from actlab.search.state import SearchSettings, SearchState
from actlab.search.workers import compute_features, work

ROOT = Path(__file__).parent
WORKDIR = ROOT / "out" / "actbench_mini"
RESULTS = ROOT / "results"
NUM_FUNCTIONS = 300
SETTINGS = SearchSettings(dataset="mnist10k", model="cnn(channels=8)", epochs=2, batch_size=128, lr=2e-3, seed=0)


def sample(state: SearchState, n: int = NUM_FUNCTIONS, seed: int = 0) -> list[str]:
    """The baselines' representatives, then functions drawn uniformly from the rest of the space."""
    base = list(dict.fromkeys(state.representative(b) for b in BASELINES))
    rest = sorted(set(state.names()) - set(base))
    drawn = np.random.default_rng(seed).choice(len(rest), n - len(base), replace=False)
    return base + [rest[i] for i in sorted(drawn)]


def train(state: SearchState, names: list[str]) -> None:
    state.enqueue(names[: len(BASELINES)], "baseline")
    state.enqueue(names, "bench")
    start = time.time()
    while True:
        cpu = time.process_time()
        if not work(state.workdir, max_tasks=1):
            break
        _add_cpu_time(state, time.process_time() - cpu)
        c = state.counts()
        row = state.db.execute("SELECT rep, status, val_acc, train_time FROM search_functions"
                               " WHERE finished IS NOT NULL ORDER BY finished DESC LIMIT 1").fetchone()
        acc = f"{row['val_acc']:.4f}" if row["val_acc"] is not None else "-"
        print(f"[{time.time() - start:7.0f}s] {state.finished_count():3d}/{len(names)} {row['status']:8s} "
              f"val {acc} {row['train_time']:5.1f}s {row['rep']}  (counts {c})", flush=True)


def export(state: SearchState, names: list[str], results: Path) -> list[dict]:
    """The table (CSV) and the features (npz) of the benchmark functions, in sampling order."""
    aliases = {state.representative(b): b for b in BASELINES}
    table = []
    for rep in names:
        r = state.result(rep)
        table.append({"name": aliases.get(rep, rep), "representative": rep, "val_acc": r["val_acc"],
                      "test_acc": r["test_acc"], "status": r["status"], "train_time_s": round(r["train_time"], 3),
                      "attempts": r["attempts"], "error": r["error"] or ""})
    write_csv(table, results / "actbench_mini.csv")
    np.savez_compressed(results / "actbench_mini_features.npz", names=np.array(names),
                        outputs=state.features("outputs", names).astype(np.float32),
                        fisher=state.features("fisher", names), inputs=state.space.inputs.numpy())
    return table


def correlations(blocks: dict[str, list[np.ndarray]], scores: np.ndarray, splits: int = 10) -> list[dict]:
    """Spearman (and top-10 recall) of held-out predictions, 80/20 splits, mean and std over ``splits``."""
    out = []
    for method in ("umap_knn", "pca_knn"):
        for kind, feats in blocks.items():
            model = make_surrogate(method, seed=0)  # one embedding of all functions, reused by every split
            res = [holdout_evaluation(model, feats, np.arange(len(scores)), scores, test_frac=0.2, k=10, seed=s)
                   for s in range(splits)]
            rho = np.array([r["spearman"] for r in res])
            recall = np.array([r["top_k_recall"] for r in res])
            out.append({"surrogate": method, "features": kind, "spearman_mean": float(rho.mean()),
                        "spearman_std": float(rho.std()), "top10_recall_mean": float(recall.mean())})
            print(f"  {method:8s} {kind:8s} spearman {rho.mean():.3f} ± {rho.std():.3f}", flush=True)
    return out


def searches(blocks: dict[str, list[np.ndarray]], scores: np.ndarray, start: list[int], seeds: int = 10):
    """Replayed surrogate searches (several surrogates and feature sets) against random search."""
    summary, main_result = [], None
    for method, kind in (("umap_knn", "both"), ("umap_knn", "outputs"), ("umap_knn", "fisher"), ("pca_knn", "both")):
        res = replay(blocks[kind], scores, start, seeds=range(seeds), surrogate=method, top_frac=0.01)
        main_result = main_result or res
        for label, curves in ((f"{method}/{kind}", res.surrogate), ("random", res.random)):
            if label == "random" and any(s["search"] == "random" for s in summary):
                continue
            e = curves.evals_to_top
            summary.append({"search": label, "trainings_to_top1pct": e.tolist(), **curves.summary(),
                            "best_after_50_mean": float(curves.mean[:50][-1]),
                            "best_after_100_mean": float(curves.mean[:100][-1])})
            print(f"  {label:18s} trainings to top 1%: mean {e.mean():.1f}, median {np.median(e):.1f}", flush=True)
    return summary, main_result


def plots(state: SearchState, names: list[str], scores: np.ndarray, both: list[np.ndarray], result, table,
          results: Path) -> None:
    from actlab.search.report import plot_embedding, plot_shapes

    fig = plot_replay(result)
    fig.axes[0].set_ylabel("best validation accuracy so far")
    fig.axes[0].set_title("surrogate (UMAP+kNN, outputs+Fisher) vs random, 10 seeds")
    fig.savefig(results / "actbench_mini_curves.png", dpi=110, bbox_inches="tight")
    xy = make_surrogate("umap_knn", seed=0).embedding(both)
    fig = plot_embedding(xy, scores, title=f"UMAP of outputs + Fisher features ({len(names)} functions)")
    fig.savefig(results / "actbench_mini_umap.png", dpi=110, bbox_inches="tight")
    done = sorted((r for r in table if r["status"] == "done"), key=lambda r: -r["val_acc"])[:6]
    relu = state.representative("relu")
    fig = plot_shapes([r["representative"] for r in done] + [relu],
                      [f"{r['representative']} ({r['val_acc']:.3f})" for r in done]
                      + [f"relu = {relu} ({state.result(relu)['val_acc']:.3f})"])
    fig.savefig(results / "actbench_mini_best.png", dpi=110, bbox_inches="tight")


def analyse(state: SearchState, names: list[str], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    if compute_features(state, names, progress=False):
        print("Fisher features computed", flush=True)
    table = export(state, names, results)
    unfinished = [r["name"] for r in table if r["status"] not in ("done", "diverged", "failed")]
    if unfinished:
        raise SystemExit(f"{len(unfinished)} functions are not trained yet; run without --analyse first")
    scores = np.array([r["val_acc"] if r["status"] == "done" else DIVERGED_SCORE for r in table])
    outputs, fisher = state.features("outputs", names), state.features("fisher", names)
    blocks = {"outputs": [outputs], "fisher": [fisher], "both": [outputs, fisher]}
    print("held-out correlations:", flush=True)
    corr = correlations(blocks, scores)
    print("replayed searches:", flush=True)
    start = list(range(len(BASELINES)))  # the table starts with the baselines
    search, main_result = searches(blocks, scores, start)
    plots(state, names, scores, blocks["both"], main_result, table, results)
    relu = next(r for r in table if r["name"] == "relu")
    best = sorted((r for r in table if r["status"] == "done"), key=lambda r: (-r["val_acc"], -r["test_acc"]))[:10]
    counts = {s: sum(r["status"] == s for r in table) for s in ("done", "diverged", "failed")}
    report = {
        "settings": SETTINGS.model_dump(), "num_functions": len(table), "counts": counts,
        "space": state.space.counts, "score": f"validation accuracy; diverged = {DIVERGED_SCORE}",
        "train_time_s": {"sum": float(sum(r["train_time_s"] for r in table)),
                         "mean": float(np.mean([r["train_time_s"] for r in table]))},
        "train_cpu": json.loads(cpu["value"]) if (cpu := state.db.execute(
            "SELECT value FROM search_meta WHERE key='bench_cpu'").fetchone()) else None,
        "top1pct_threshold": float(main_result.threshold), "correlations": corr, "searches": search,
        "relu": relu, "best": best,
    }
    (results / "actbench_mini.json").write_text(json.dumps(report, indent=2))
    (results / "actbench_mini.md").write_text(markdown(report))
    print((results / "actbench_mini.md").read_text())


def markdown(rep: dict) -> str:
    s = rep["settings"]
    lines = [
        "# actbench_mini: 300 functions of the search space, trained once each", "",
        f"Settings: {s['dataset']} (official MNIST test split shipped with actlab, re-split 8k/1k/1k), "
        f"{s['model']}, {s['epochs']} epochs, batch {s['batch_size']}, Adam lr {s['lr']}, seed {s['seed']}; "
        f"one thread. Space: {rep['space']['unique']} unique finite functions ({s['equivalence']} equivalence), "
        f"the 8 baselines + {rep['num_functions'] - 8} drawn uniformly (seed 0).",
        f"Counts: {rep['counts']}. Training time (wall, on a shared 2-core machine): "
        f"{rep['train_time_s']['sum'] / 60:.1f} min in all, {rep['train_time_s']['mean']:.1f} s per function."
        + (f" CPU time of the training process: {rep['train_cpu']['seconds'] / 60:.1f} min "
           f"({rep['train_cpu']['how']})." if rep["train_cpu"] else ""),
        f"Score: {rep['score']}.", "",
        "## Held-out rank correlation of surrogate predictions with accuracy (80/20 splits, 10 seeds)", "",
        "| surrogate | features | Spearman (mean ± std) | top-10 recall |", "|---|---|---|---|",
    ]
    lines += [f"| {c['surrogate']} | {c['features']} | {c['spearman_mean']:.3f} ± {c['spearman_std']:.3f} | "
              f"{c['top10_recall_mean']:.2f} |" for c in rep["correlations"]]
    lines += ["", f"## Trainings needed to find a top-1% function (val acc >= {rep['top1pct_threshold']:.4f}), "
              "replayed, 10 seeds (baselines included)", "",
              "| search | mean | median | found | best after 50 | best after 100 |", "|---|---|---|---|---|---|"]
    lines += [f"| {x['search']} | {x['mean_evals_to_top']:.1f} | {x['median_evals_to_top']:.1f} | "
              f"{x['found_frac']:.0%} | {x['best_after_50_mean']:.4f} | {x['best_after_100_mean']:.4f} |"
              for x in rep["searches"]]
    relu = rep["relu"]
    lines += ["", "## Best functions (validation accuracy) next to relu", "",
              "| # | function | val acc | test acc | val − relu |", "|---|---|---|---|---|"]
    lines += [f"| {i} | `{r['representative']}` | {r['val_acc']:.4f} | {r['test_acc']:.4f} | "
              f"{r['val_acc'] - relu['val_acc']:+.4f} |" for i, r in enumerate(rep["best"], 1)]
    lines += [f"| relu | `{relu['representative']}` | {relu['val_acc']:.4f} | {relu['test_acc']:.4f} | 0 |", "",
              "Plots: `actbench_mini_curves.png`, `actbench_mini_umap.png`, `actbench_mini_best.png`.", ""]
    return "\n".join(lines)


def _add_cpu_time(state: SearchState, seconds: float) -> None:
    """Accumulate the training CPU time in the state, so a resumed benchmark reports the total."""
    with state.transaction() as db:
        row = db.execute("SELECT value FROM search_meta WHERE key='bench_cpu'").fetchone()
        total = json.loads(row["value"]) if row else {"seconds": 0.0, "how": "time.process_time per training"}
        total["seconds"] += seconds
        db.execute("INSERT OR REPLACE INTO search_meta(key, value) VALUES('bench_cpu', ?)", (json.dumps(total),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyse", action="store_true", help="skip training; analyse the stored table")
    parser.add_argument("--train-only", action="store_true", help="train what is left; no analysis")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the benchmark is sized for one core
    threadpool_limits(1)
    state = SearchState.init(WORKDIR, SETTINGS)
    names = sample(state)
    if not args.analyse:
        train(state, names)
    if not args.train_only:
        analyse(state, names, RESULTS)


if __name__ == "__main__":
    main()
