"""Act-Bench-MNIST10k analysis: seed noise, surrogate correlations and replayed searches.

Reads the committed tables (``bench/results/actbench_mnist10k.csv`` and
``actbench_mnist10k_seeds.csv``, written by ``bench/actbench.py``) through
``actlab.search.load_benchmark``; features are computed once and cached in
``bench/out/actbench_features``. Works on a partial table too (the note then
says how many functions it covers).

    python bench/actbench_analysis.py [--seeds 20] [--budget 300] [--workers 2]

Outputs ``bench/results/actbench_analysis.{json,md}`` and ``actbench_curves.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from actlab.search import BASELINES, holdout_evaluation, load_benchmark, make_surrogate
from actlab.search.replay import best_so_far, evals_to_reach, random_order, surrogate_order, top_threshold

ROOT = Path(__file__).parent
RESULTS = ROOT / "results"
TABLE, NOISE = RESULTS / "actbench_mnist10k.csv", RESULTS / "actbench_mnist10k_seeds.csv"
SURROGATES = ("umap_knn", "pca_knn", "pca_gp")


def seed_noise(bench) -> dict:
    """Std of validation accuracy over seeds 0, 1, 2 per function of the noise sample (done in all seeds)."""
    if not NOISE.exists():
        return {"functions": 0}
    acc: dict[str, dict[int, float]] = {}
    for r in csv.DictReader(NOISE.open()):
        if r["status"] == "done":
            acc.setdefault(r["name"], {})[int(r["seed"])] = float(r["val_acc"])
    seed0 = dict(zip(bench.names, bench.metric("val_acc")))
    for name, per_seed in acc.items():
        if np.isfinite(seed0.get(name, np.nan)):
            per_seed[0] = seed0[name]
    full = {n: np.array([s[k] for k in (0, 1, 2)]) for n, s in acc.items() if set(s) == {0, 1, 2}}
    if not full:
        return {"functions": 0}
    means = np.array([v.mean() for v in full.values()])
    stds = np.array([v.std(ddof=1) for v in full.values()])
    top = means >= np.quantile(means, 0.9)
    return {"functions": len(full), "std_mean": float(stds.mean()), "std_median": float(np.median(stds)),
            "std_mean_top10pct": float(stds[top].mean()), "top10pct_functions": int(top.sum())}


def correlations(blocks: dict, scores: np.ndarray, splits: int = 10) -> list[dict]:
    out = []
    for method in SURROGATES:
        for kind, feats in blocks.items():
            model = make_surrogate(method, seed=0)
            res = [holdout_evaluation(model, feats, np.arange(len(scores)), scores, test_frac=0.2, k=10, seed=s)
                   for s in range(splits)]
            rho = np.array([r["spearman"] for r in res])
            out.append({"surrogate": method, "features": kind, "spearman_mean": float(rho.mean()),
                        "spearman_std": float(rho.std())})
            print(f"  {method:8s} {kind:8s} spearman {rho.mean():.3f} ± {rho.std():.3f}", flush=True)
    return out


def _replay(args: tuple) -> np.ndarray:
    feats, scores, start, budget, method, seed = args
    return surrogate_order(feats, scores, start, budget, surrogate=method, seed=seed)


def searches(feats, scores: np.ndarray, start: list[int], seeds: int, budget: int, noise_std: float,
             workers: int = 1) -> dict:
    """Best-so-far curves and trainings to reach the top 1 %, top 0.1 % and the best minus one noise std.

    The replays of (surrogate, seed) are independent: ``workers`` processes share them (a GP replay of
    300 steps refits its hyper-parameters at every step and takes minutes)."""
    targets = {"top 1%": top_threshold(scores, 0.01), "top 0.1%": top_threshold(scores, 0.001)}
    if noise_std > 0:
        targets["within 1 noise std of the best"] = float(scores.max() - noise_std)
    orders = {"random": [random_order(len(scores), start, s) for s in range(seeds)]}
    jobs = [(feats, scores, start, budget, method, s) for method in SURROGATES for s in range(seeds)]
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn: torch and sklearn have started OpenMP threads here, and fork() after that is unsafe
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(_replay, jobs))
    else:
        done = [_replay(job) for job in jobs]
    for i, method in enumerate(SURROGATES):
        orders[method] = done[i * seeds:(i + 1) * seeds]
        print(f"  replayed {method}", flush=True)
    out = {}
    for name, runs in orders.items():
        curves = np.stack([best_so_far(scores, o[:budget]) for o in runs])
        reach = {t: np.array([evals_to_reach(scores, o, v) for o in runs]) for t, v in targets.items()}
        out[name] = {"curve_mean": curves.mean(0).tolist(),
                     "curve_ci95": (1.96 * curves.std(0, ddof=1) / np.sqrt(seeds)).tolist(),
                     "trainings": {t: _interval(e) for t, e in reach.items()}}
    return {"targets": targets, "seeds": seeds, "budget": budget, "runs": out}


def _interval(e: np.ndarray) -> dict:
    found = np.isfinite(e)
    f = e[found]
    half = 1.96 * f.std(ddof=1) / np.sqrt(len(f)) if len(f) > 1 else float("nan")
    return {"mean": float(f.mean()) if len(f) else None, "ci95": float(half), "found": f"{found.sum()}/{len(e)}"}


def plot(result: dict, path: Path) -> None:
    ax = Figure(figsize=(6, 4)).subplots()
    for name, r in result["runs"].items():
        m, h = np.array(r["curve_mean"]), np.array(r["curve_ci95"])
        x = np.arange(1, len(m) + 1)
        ax.plot(x, m, label=name)
        ax.fill_between(x, m - h, m + h, alpha=0.2)
    ax.set_xlabel("trainings")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"replayed searches, mean and 95 % interval over {result['seeds']} seeds")
    ax.legend(loc="lower right")
    ax.figure.savefig(path, dpi=110, bbox_inches="tight")


def markdown(rep: dict) -> str:
    n, noise = rep["functions"], rep["noise"]
    lines = ["# Act-Bench-MNIST10k analysis", "",
             f"Functions in the table: {n} of {rep['space_unique']} ({rep['counts']}). Score: validation accuracy "
             "(diverged = 0).", "", "## Seed noise (seeds 0, 1, 2)", ""]
    lines += ([f"{noise['functions']} functions: std of validation accuracy mean {noise['std_mean']:.4f}, median "
               f"{noise['std_median']:.4f}; top 10 % ({noise['top10pct_functions']}): {noise['std_mean_top10pct']:.4f}."]
              if noise["functions"] else ["No function has all three seeds yet."])
    lines += ["", "## Held-out Spearman correlation (80/20 splits, 10 seeds)", "",
              "| surrogate | features | Spearman |", "|---|---|---|"]
    lines += [f"| {c['surrogate']} | {c['features']} | {c['spearman_mean']:.3f} ± {c['spearman_std']:.3f} |"
              for c in rep["correlations"]]
    s = rep["searches"]
    lines += ["", f"## Trainings to reach a target (mean ± 95 % interval over the runs that reached it within "
              f"{s['budget']} for surrogates; {s['seeds']} seeds; baselines included)", "",
              "| search | " + " | ".join(f"{t} (≥ {v:.4f})" for t, v in s["targets"].items()) + " |",
              "|---" * (1 + len(s["targets"])) + "|"]
    for name, r in s["runs"].items():
        cells = [f"{c['mean']:.1f} ± {c['ci95']:.1f} ({c['found']})" if c["mean"] is not None else f"— ({c['found']})"
                 for c in r["trainings"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", "Plot: `actbench_curves.png`.", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2, help="processes for the replayed searches")
    args = parser.parse_args()
    bench = load_benchmark(TABLE, workdir=ROOT / "out" / "actbench_features")
    scores = bench.scores()
    outputs, fisher = bench.features("outputs"), bench.features("fisher", progress=True)
    blocks = {"outputs": [outputs], "fisher": [fisher], "both": [outputs, fisher]}
    state = bench.state()
    start = [bench.names.index(state.representative(b)) for b in BASELINES
             if state.representative(b) in bench.names]
    noise = seed_noise(bench)
    print("correlations", flush=True)
    corr = correlations(blocks, scores)
    print("searches", flush=True)
    search = searches(blocks["both"], scores, start, args.seeds, min(args.budget, len(scores)),
                      noise.get("std_mean_top10pct", 0.0), args.workers)
    counts = {s: int((bench.status == s).sum()) for s in ("done", "diverged", "failed")}
    rep = {"functions": len(bench), "space_unique": len(state.names()), "counts": counts, "noise": noise,
           "correlations": corr, "searches": search}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "actbench_analysis.json").write_text(json.dumps(rep, indent=2))
    (args.out / "actbench_analysis.md").write_text(markdown(rep))
    plot(search, args.out / "actbench_curves.png")
    print(markdown(rep))


if __name__ == "__main__":
    main()
