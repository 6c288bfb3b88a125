"""Accuracy kept by compression (issue 5): every learned run of the accuracy bench, compressed.

Each trained run of a learned family (slaf, spline, rational, subnet) in the
accuracy bench's store is compressed with ``compress_run``'s defaults (a
64-knot lookup table per activation site, fitted on the inputs of the first
2,048 training samples) and its test accuracy compared with the original's.
Goal: the change is at most 0.1 percentage point (mean over the 3 seeds).

The source store is only read: its finished runs (config, metrics and
checkpoint) are mirrored into ``--workdir`` and compressed there, so the
accuracy bench's own tables never gain the derived runs. Re-running skips runs
already compressed. Runs the accuracy bench has not finished are listed as
missing, or waited for with ``--wait``.

    python bench/compress_accuracy.py            # compress what is finished, write bench/results
    python bench/compress_accuracy.py --wait     # poll until the accuracy bench has finished
    python bench/compress_accuracy.py --quick    # smoke: a 1-seed moons grid of its own, 2 epochs
    python bench/compress_accuracy.py --stress   # the stress set: pwl/cubic/poly, both tails (bench/_compress_stress.py)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import torch

import actlab
from actlab.activations import canonical
from actlab.data import load_dataset_spec
from actlab.experiments import parse_config, run_experiment
from actlab.experiments.compare import compare
from actlab.experiments.compressed import compress_run
from actlab.experiments.runs import checkpoint_path
from actlab.store import RunStore

import accuracy  # bench/accuracy.py (beside this script): the grid whose learned runs are compressed
from _compress_stress import stress_markdown, stress_rows

LEARNED = ("slaf", "spline", "rational", "subnet")
EXPERIMENTS = ("accuracy_mnist10k", "accuracy_titanic", "accuracy_banknote")
METHOD = "pwl(knots=64)"  # the label compress_run gives its default
GOAL_PP = 0.1
SOURCE_SEEDS = (0, 1, 2)  # those of bench/accuracy.py's full grid
QUICK_LEARNED = ["slaf(degree=4,basis=chebyshev)", "spline(knots=32)", "rational", "subnet(hidden=8)"]
OUT = Path(__file__).parent


def is_learned(activation: str) -> bool:
    return "->" not in activation and activation.split("(")[0] in LEARNED


def _mirror(source: RunStore, target: RunStore, run: dict) -> None:
    """Copy a finished run (row and checkpoint) into the target store, once."""
    if target.status(run["run_id"]) == run["status"]:
        return
    src = checkpoint_path(source.workdir, run["run_id"])
    if src.exists():
        shutil.copy2(src, checkpoint_path(target.workdir, run["run_id"]))
    target.start_run(run["run_id"], run["experiment"], run["config"], run["info"])
    target.finish_run(run["run_id"], run["status"], test=run["test"], diverged_epoch=run["diverged_epoch"],
                      info=run["info"])


def _derived(store: RunStore, rid: str) -> dict | None:
    return next((r for r in store.runs() if r["config"].get("compressed_from") == rid
                 and r["config"]["activation"].endswith(f"-> {METHOD}") and r["status"] == "done"), None)


def compress_finished(source_dir: Path, workdir: Path, experiments: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """Compress every finished learned run not compressed yet; return (rows, runs not usable)."""
    source = RunStore(source_dir, create=False)
    target = RunStore(workdir)
    rows, skipped = [], []
    for run in source.runs():
        cfg = run["config"]
        if run["experiment"] not in experiments or not is_learned(cfg["activation"]):
            continue
        if run["status"] in ("running", "pending"):
            continue  # counted as missing: the source may still finish it
        if run["status"] != "done":
            skipped.append({"experiment": run["experiment"], "activation": cfg["activation"],
                            "seed": cfg["seed"], "status": run["status"]})
            continue
        _mirror(source, target, run)
        derived = _derived(target, run["run_id"])
        if derived is None:
            compress_run(workdir, run["run_id"], latency=False)
            derived = _derived(target, run["run_id"])
        info = derived["info"]
        rows.append({
            "experiment": run["experiment"], "dataset": info["dataset_description"], "dataset_spec": cfg["dataset"],
            "model": cfg["model"],
            "activation": cfg["activation"], "seed": cfg["seed"], "epochs": cfg["train"]["epochs"],
            "run_id": run["run_id"], "compressed_run_id": derived["run_id"],
            "original_acc": run["test"]["acc"], "recomputed_original_acc": info["original_test_acc"],
            "compressed_acc": derived["test"]["acc"],
            "delta_pp": 100 * (derived["test"]["acc"] - run["test"]["acc"]), "sites": info["sites"],
        })
    source.close()
    target.close()
    return rows, skipped


def missing_runs(rows: list[dict], skipped: list[dict], expected: list[tuple[str, str, int]]) -> list[tuple]:
    """(experiment, activation, seed) of the source grid neither compressed nor skipped yet."""
    seen = {(r["experiment"], r["activation"], r["seed"]) for r in rows + skipped}
    return [key for key in expected if key not in seen]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict], test_sizes: dict[str, int], goal_pp: float = GOAL_PP) -> list[dict]:
    """Mean ± std over seeds per (experiment, activation), the change and the goal."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["activation"]), []).append(row)
    out = []
    for (experiment, activation), members in groups.items():
        orig, comp = _mean_std([r["original_acc"] for r in members]), _mean_std([r["compressed_acc"] for r in members])
        deltas = [r["delta_pp"] for r in members]
        mean_delta = statistics.fmean(deltas)
        out.append({
            "experiment": experiment, "dataset": members[0]["dataset"], "model": members[0]["model"],
            "activation": activation, "seeds": len(members), "test_size": test_sizes.get(experiment),
            "original_mean": orig[0], "original_std": orig[1], "compressed_mean": comp[0], "compressed_std": comp[1],
            "mean_delta_pp": mean_delta, "max_abs_delta_pp": max(abs(d) for d in deltas),
            "goal_met": abs(mean_delta) <= goal_pp + 1e-9,
        })
    tests = _paired(rows)
    for row in out:
        c = tests[(row["experiment"], row["activation"])]
        row |= {"delta_ci_pp": [100 * c.ci_low, 100 * c.ci_high], "p": c.p, "test": c.test}
    return out


def _paired(rows: list[dict]) -> dict:
    """Compressed against original test accuracy, seed-paired (actlab compare), per (experiment, activation)."""
    flat = [{"experiment": r["experiment"], "dataset": r["activation"], "model": "", "activation": kind,
             "seed": r["seed"], "status": "done", "test_acc": r[f"{kind}_acc"]}
            for r in rows for kind in ("original", "compressed")]
    return {(c.experiment, c.dataset): c for c in compare(flat, baseline="original")}


def site_errors(rows: list[dict]) -> list[dict]:
    """Per (experiment, activation, site): fit errors and range, mean over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        for site in row["sites"]:
            groups.setdefault((row["experiment"], row["activation"], site["name"]), []).append(site)
    out = []
    for (experiment, activation, name), sites in groups.items():
        weighted = [s["weighted_error"] for s in sites if s["weighted_error"] is not None]
        out.append({"experiment": experiment, "activation": activation, "site": name, "seeds": len(sites),
                    "channels": sites[0]["channels"],
                    "max_error_mean": statistics.fmean(s["max_error"] for s in sites),
                    "weighted_error_mean": statistics.fmean(weighted) if weighted else None,
                    "lo_mean": statistics.fmean(s["lo"] for s in sites),
                    "hi_mean": statistics.fmean(s["hi"] for s in sites)})
    return out


def markdown(result: dict) -> str:
    lines = ["# Accuracy kept by compression", "",
             f"Every finished run of a learned family ({', '.join(LEARNED)}) in `{result['source']}` compressed by "
             f"`compress_run` with its defaults: `{METHOD}` per activation site, range = 0.1/99.9 percentiles of "
             "the site's inputs on the first 2,048 training samples. Test accuracy of the compressed model against "
             "the original's, mean ± std over seeds.", "", "Data sets (test split sizes; one test sample = "
             "100/n percentage points):"]
    for s in dict((r["experiment"], r) for r in result["summary"]).values():
        lines.append(f"- {s['experiment']}: {s['dataset']}; model `{s['model']}`; "
                     f"{result['epochs'][s['experiment']]} epochs; test n = {s['test_size']} "
                     f"(1 sample = {100 / s['test_size']:.3g} pp)")
    lines += ["", f"Seeds: {result['seeds']}. Goal: |mean change| <= {GOAL_PP} pp.", "",
              "| dataset | activation | seeds | original test acc % | compressed test acc % | mean change pp "
              "| 95 % CI (paired t) | p | max abs change pp | goal |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(f"| {s['experiment'].removeprefix('accuracy_')} | {s['activation']} | {s['seeds']} | "
                     f"{100 * s['original_mean']:.2f} ± {100 * s['original_std']:.2f} | "
                     f"{100 * s['compressed_mean']:.2f} ± {100 * s['compressed_std']:.2f} | "
                     f"{s['mean_delta_pp']:+.3f} | {_ci(s)} | {_p(s)} | {s['max_abs_delta_pp']:.3f} | "
                     f"{'met' if s['goal_met'] else 'missed'} |")
    met = sum(s["goal_met"] for s in result["summary"])
    lines += ["", f"Goal met for {met} of {len(result['summary'])} (dataset, activation) pairs.", "",
              "## Fit errors per site (mean over seeds)", "",
              "Max error: the largest |f - table| over the fitted range; weighted error: the root-mean-square "
              "|f - table| over the recorded inputs themselves, tails beyond the range included.", "",
              "| dataset | activation | site | channels | range (mean) | max error | weighted error |",
              "|---|---|---|---|---|---|---|"]
    for e in result["sites"]:
        weighted = "—" if e["weighted_error_mean"] is None else f"{e['weighted_error_mean']:.2e}"
        lines.append(f"| {e['experiment'].removeprefix('accuracy_')} | {e['activation']} | {e['site']} | "
                     f"{e['channels']} | [{e['lo_mean']:.3g}, {e['hi_mean']:.3g}] | {e['max_error_mean']:.2e} | "
                     f"{weighted} |")
    if result["skipped"]:
        lines += ["", "Runs not compressed (diverged or failed in training):"]
        lines += [f"- {s['experiment']} {s['activation']} seed {s['seed']}: {s['status']}" for s in result["skipped"]]
    mismatched = [r for r in result["runs"] if abs(r["original_acc"] - r["recomputed_original_acc"]) > 1e-9]
    if result["missing"]:
        lines += ["", f"Incomplete: {len(result['missing'])} learned run(s) of the source grid are not finished: "
                  + ", ".join(f"{e} {a} seed {s}" for e, a, s in result["missing"])]
    if mismatched:
        lines += ["", f"Warning: {len(mismatched)} run(s) evaluated now differ from their stored test accuracy."]
    return "\n".join(lines) + "\n"


def _ci(s: dict) -> str:
    lo, hi = s["delta_ci_pp"]
    return "—" if lo != lo else f"[{lo:+.3f}, {hi:+.3f}]"


def _p(s: dict) -> str:
    return "— (no spread)" if s["p"] != s["p"] else f"{s['p']:.2g}"


def quick_source(workdir: Path) -> Path:
    """A tiny store of its own: moons, one seed, 2 epochs, every learned family."""
    cfg = parse_config({"name": "accuracy_moons", "datasets": ["moons"], "models": ["mlp(widths=[8,8])"],
                        "activations": ["relu", *QUICK_LEARNED], "seeds": [0], "epochs": 2, "lr": 0.01})
    run_experiment(cfg, workdir / "source", progress=False).close()
    return workdir / "source"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny moons grid of its own instead of the bench's")
    parser.add_argument("--source", type=Path, default=OUT / "out" / "accuracy" / "full")
    parser.add_argument("--workdir", type=Path, default=OUT / "out" / "compress_accuracy")
    parser.add_argument("--wait", action="store_true", help="poll until every learned run of the source is finished")
    parser.add_argument("--poll", type=float, default=120.0, help="seconds between polls with --wait")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--analyse", action="store_true",
                        help="recompute the summary from the committed compress_accuracy.json (no training)")
    parser.add_argument("--stress", action="store_true",
                        help="every method and both tails on the test inputs and on them x2 (the stress set)")
    args = parser.parse_args()
    if args.stress:
        return _stress(args)
    if args.analyse:
        path = OUT / "results" / "compress_accuracy.json"
        result = json.loads(path.read_text())
        sizes = {s["experiment"]: s["test_size"] for s in result["summary"]}
        result["summary"] = summarize(result["runs"], sizes)
        path.write_text(json.dumps(result, indent=2))
        (OUT / "results" / "compress_accuracy.md").write_text(markdown(result))
        return print(markdown(result))
    torch.set_num_threads(args.threads)
    assert actlab.ACTIVATIONS  # registers every family
    workdir = args.workdir / ("quick" if args.quick else "full")
    if args.quick:
        source, experiments = quick_source(workdir), ("accuracy_moons",)
        expected = [("accuracy_moons", canonical(a), 0) for a in QUICK_LEARNED]
    else:
        source, experiments = args.source, EXPERIMENTS
        expected = [(e, canonical(a), s) for e in EXPERIMENTS for a in accuracy.LEARNED for s in SOURCE_SEEDS]
    while True:
        rows, skipped = compress_finished(source, workdir, experiments)
        missing = missing_runs(rows, skipped, expected)
        if not (args.wait and missing):
            break
        print(f"{len(rows)} runs compressed; waiting for {len(missing)} learned runs of the source", flush=True)
        time.sleep(args.poll)
    specs = {r["experiment"]: r["dataset_spec"] for r in rows}
    test_sizes = {e: len(load_dataset_spec(spec).test) for e, spec in specs.items()}
    result = {"source": os.path.relpath(source), "method": METHOD, "goal_pp": GOAL_PP,
              "seeds": sorted({r["seed"] for r in rows}), "epochs": {r["experiment"]: r["epochs"] for r in rows},
              "missing": missing, "summary": summarize(rows, test_sizes), "sites": site_errors(rows),
              "skipped": skipped, "runs": rows}
    text = markdown(result)
    results = workdir if args.quick else OUT / "results"  # only the full run is committed
    results.mkdir(parents=True, exist_ok=True)
    (results / "compress_accuracy.json").write_text(json.dumps(result, indent=2))
    (results / "compress_accuracy.md").write_text(text)
    print(text)


def _stress(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    assert actlab.ACTIVATIONS  # registers every family
    workdir = args.workdir / ("quick" if args.quick else "full")
    source, experiments = (quick_source(workdir), ("accuracy_moons",)) if args.quick else (args.source, EXPERIMENTS)
    rows = stress_rows(source, experiments, is_learned, (0,) if args.quick else SOURCE_SEEDS)
    results = workdir if args.quick else OUT / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "compress_stress.json").write_text(json.dumps({"source": os.path.relpath(source), "rows": rows},
                                                             indent=2))
    (results / "compress_stress.md").write_text(stress_markdown(rows))
    print(stress_markdown(rows))


if __name__ == "__main__":
    main()
