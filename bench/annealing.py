"""Benchmark: does convexity annealing help the MNIST CNN and a deep plain MLP?

On mnist10k, the original CNN (``cnn``) and a 10-hidden-layer MLP without
normalisation are trained with theta_relu fixed at 0 (the ReLU baseline),
annealed linearly from pi/4 to 0 over the first half of training, with a
trainable theta shared per layer or per neuron, and with the generalised
``anneal(base=relu)`` (t linear from 0 to 1 over the same period), at two
learning rates and three seeds. Runs go through the experiment runner into a
run store, so a killed bench resumes where it stopped. Writes

    RESULTS/annealing.json   settings, one row per run, the summary and the verdict
    RESULTS/annealing.md     the summary table and the verdict, computed from the numbers
    RESULTS/annealing/*.png  Youden plots (final train vs val error; train time vs test
                             accuracy) and curves of val accuracy and theta / t

Usage: python bench/annealing.py [--quick] [--workdir DIR] [--results DIR] [--lrs 0.001 0.01]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from actlab.annealing.report import curves_figure, with_site_means
from actlab.experiments import grid, parse_config, run_experiment, run_rows
from actlab.experiments.compare import compare
from actlab.plots import youden_from_results
from actlab.store import RunStore, run_id


@dataclass(frozen=True)
class Setting:
    name: str
    model: str
    epochs: int
    period: float  # anneal length in epochs: the second half trains the ReLU network itself
    target: float  # the validation accuracy whose first epoch is reported
    seeds: tuple[int, ...] = (0, 1, 2)


_MLP10 = f"mlp(widths=[{','.join(['64'] * 10)}])"
# CNN and MLP epochs take about 6 s and 0.8 s single-threaded, so the full grid is ~25 min.
# The CNN is past 0.90 validation accuracy after one epoch with any schedule, hence 0.95.
FULL = (Setting("cnn", "cnn", 6, 3, 0.95), Setting("mlp10", _MLP10, 10, 5, 0.90))
QUICK = (Setting("cnn", "cnn", 1, 0.5, 0.95, (0,)), Setting("mlp10", _MLP10, 2, 1, 0.90, (0,)))
BASELINE = "relu"


def schedules(period: float) -> dict[str, str]:
    return {
        BASELINE: "theta_relu(mode=fixed,theta=0)",
        "linear": f"theta_relu(schedule=linear(start={math.pi / 4!r},end=0,epochs={period:g}))",
        "trainable_shared": "theta_relu(mode=trainable,sharing=layer,lr=0.01)",
        "trainable_neuron": "theta_relu(mode=trainable,sharing=neuron,lr=0.01)",
        "anneal_relu": f"anneal(base=relu,schedule=linear(start=0,end=1,epochs={period:g}))",
    }


def run_grid(settings: tuple[Setting, ...], lrs: list[float], workdir: Path) -> dict[str, dict]:
    """Train what the store lacks; return {run_id: (setting, lr, schedule)} of the whole grid."""
    wanted = {}
    for s in settings:
        for lr in lrs:
            for schedule, spec in schedules(s.period).items():
                cfg = parse_config({"name": f"{s.name}_lr{lr:g}", "datasets": ["mnist10k"], "models": [s.model],
                                    "activations": [spec], "seeds": list(s.seeds), "epochs": s.epochs, "lr": lr})
                t0 = time.perf_counter()
                run_experiment(cfg, workdir, progress=False).close()
                print(f"{time.strftime('%H:%M:%S')} {cfg.name} {schedule}: {time.perf_counter() - t0:.0f} s", flush=True)
                wanted |= {run_id(r): {"setting": s.name, "lr": lr, "schedule": schedule} for r in grid(cfg)}
    return wanted


def collect(workdir: Path, wanted: dict[str, dict], settings: tuple[Setting, ...]) -> list[dict]:
    targets = {s.name: s.target for s in settings}
    store = RunStore(workdir, create=False)
    runs = []
    for row in run_rows(store):
        if row["run_id"] not in wanted:
            continue
        history = with_site_means(store.history(row["run_id"]))
        key = wanted[row["run_id"]]
        reached = [rec["epoch"] for rec in history if rec["val_acc"] >= targets[key["setting"]]]
        runs.append(key | {
            "seed": row["seed"], "activation": row["activation"], "status": row["status"],
            "test_acc": row.get("test_acc"), "final_train_error": row.get("final_train_error"),
            "final_val_error": row.get("final_val_error"), "train_time": row["train_time"],
            "epochs_to_target": reached[0] if reached else None,
            "val_acc": [rec["val_acc"] for rec in history],
            "theta_deg": [rec.get("theta_deg") for rec in history], "t": [rec.get("t") for rec in history],
        })
        runs[-1]["_history"] = history
    store.close()
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    """Mean ± std over seeds per (setting, lr, schedule), compared with the ReLU baseline."""
    cells: dict[tuple, list[dict]] = {}
    for r in runs:
        cells.setdefault((r["setting"], r["lr"], r["schedule"]), []).append(r)
    out = []
    for (setting, lr, schedule), members in cells.items():
        done = [r for r in members if r["status"] == "done"]
        acc, acc_std = _mean_std([r["test_acc"] for r in done])
        out.append({
            "setting": setting, "lr": lr, "schedule": schedule, "runs": len(members), "done": len(done),
            "diverged": sum(r["status"] == "diverged" for r in members),
            "test_acc_mean": acc, "test_acc_std": acc_std,
            "epochs_to_target": [r["epochs_to_target"] for r in sorted(members, key=lambda r: r["seed"])],
            "final_train_error_mean": _mean_std([r["final_train_error"] for r in done])[0],
            "final_val_error_mean": _mean_std([r["final_val_error"] for r in done])[0],
            "train_time_mean": _mean_std([r["train_time"] for r in done])[0],
            "train_time_range": [min((r["train_time"] for r in done), default=math.nan),
                                 max((r["train_time"] for r in done), default=math.nan)],
        })
    tests = _compare(runs)
    for row in out:
        c = tests.get((row["setting"], row["lr"], row["schedule"]))
        row["vs_relu"] = "baseline" if row["schedule"] == BASELINE else _label(c)
        if c is not None:
            row |= {"diff_pp": 100 * c.diff, "ci_pp": [100 * c.ci_low, 100 * c.ci_high], "p_holm": c.p_holm}
    return out


def _compare(runs: list[dict]) -> dict:
    """Each schedule against ReLU per (setting, lr): seed-paired t-tests, Holm-corrected (actlab compare)."""
    rows = [{"experiment": r["setting"], "dataset": r["lr"], "model": "", "activation": r["schedule"],
             "seed": r["seed"], "status": r["status"], "test_acc": r["test_acc"]} for r in runs]
    return {(c.experiment, c.dataset, c.activation): c for c in compare(rows, baseline=BASELINE)}


def _label(c) -> str:
    if c is None:
        return "n/a"
    return {"better than the baseline": "helped", "worse than the baseline": "hurt"}.get(
        c.verdict, "no difference" if c.test != "none" else "too few seeds")


def _pm(mean: float, std: float) -> str:
    return "—" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _epochs(values: list) -> str:
    return ", ".join("—" if v is None else str(v) for v in values)


def verdict(summary: list[dict], settings: tuple[Setting, ...]) -> str:
    """One paragraph, built from the comparisons in ``summary``."""
    sentences, counts = [], {"helped": 0, "hurt": 0, "no difference": 0, "too few seeds": 0}
    targets = {s.name: s.target for s in settings}
    for setting, lr in dict.fromkeys((r["setting"], r["lr"]) for r in summary):
        cell = [r for r in summary if (r["setting"], r["lr"]) == (setting, lr)]
        base = next((r for r in cell if r["schedule"] == BASELINE), None)
        parts = []
        for r in cell:
            if r["schedule"] == BASELINE:
                continue
            counts[r["vs_relu"]] = counts.get(r["vs_relu"], 0) + 1
            diverged = f", {r['diverged']} diverged" if r["diverged"] else ""
            p = f", p {r['p_holm']:.2g}" if r.get("p_holm") == r.get("p_holm") and "p_holm" in r else ""
            parts.append(f"{r['schedule']} {r['vs_relu']} ({_pm(r['test_acc_mean'], r['test_acc_std'])}{diverged}{p})")
        always = [r for r in cell if r["epochs_to_target"] and all(e is not None for e in r["epochs_to_target"])]
        best = min((statistics.fmean(r["epochs_to_target"]) for r in always), default=None)
        fastest = [r["schedule"] for r in always if statistics.fmean(r["epochs_to_target"]) == best]
        speed = (f"; of the schedules whose every seed reached {100 * targets[setting]:g} % validation accuracy, "
                 f"{', '.join(fastest)} did so soonest (mean {best:.2f} epochs)" if always else
                 f"; no schedule reached {100 * targets[setting]:g} % validation accuracy with every seed")
        base_text = _pm(base["test_acc_mean"], base["test_acc_std"]) if base else "—"
        sentences.append(f"{setting} at lr {lr:g}, against ReLU at {base_text} % test accuracy: "
                         + ", ".join(parts) + speed + ".")
    total = sum(counts.values())
    overall = (f"Of {total} comparisons with the ReLU baseline, annealing helped in {counts['helped']}, "
               f"hurt in {counts['hurt']} and made no clear difference in {counts['no difference']}"
               + (f" ({counts['too few seeds']} had too few seeds to test)" if counts.get("too few seeds") else ""))
    seeds = max((r["runs"] for r in summary), default=0)
    caveat = ("with one seed nothing can be tested" if seeds < 2 else
              f"with {seeds} seeds only large differences reach significance")
    return (overall + " (helped / hurt: a seed-paired t-test of test accuracy against ReLU, Holm-corrected over "
            f"the schedules of each model and learning rate, p < 0.05; {caveat}). " + " ".join(sentences))


def write_markdown(summary: list[dict], settings: tuple[Setting, ...], text: str, seconds: float) -> str:
    lines = ["# Convexity annealing on mnist10k", "",
             "Test accuracy is mean ± std over seeds; epochs to target lists the first epoch per seed whose "
             "validation accuracy reached the target (— not reached); train s is the mean training time per run.", ""]
    for s in settings:
        lines.append(f"- `{s.name}` = `{s.model}`: {s.epochs} epochs, anneal over the first {s.period:g}, target "
                     f"{100 * s.target:g} % validation accuracy, seeds {', '.join(map(str, s.seeds))}")
    lines += ["", "| model | lr | schedule | runs | test acc % | epochs to target | final train err % "
              "| final val err % | train s | vs ReLU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary:
        runs = f"{r['done']}/{r['runs']}" + (f" ({r['diverged']} diverged)" if r["diverged"] else "")
        lines.append(f"| {r['setting']} | {r['lr']:g} | {r['schedule']} | {runs} | "
                     f"{_pm(r['test_acc_mean'], r['test_acc_std'])} | {_epochs(r['epochs_to_target'])} | "
                     f"{100 * r['final_train_error_mean']:.2f} | {100 * r['final_val_error_mean']:.2f} | "
                     f"{r['train_time_mean']:.1f} | {r['vs_relu']} |")
    spread = max((hi / lo for lo, hi in (r["train_time_range"] for r in summary) if lo > 0), default=math.nan)
    lines += ["", "## Verdict", "", text, "",
              f"Total training time of the runs: {seconds / 60:.1f} min. Train times are wall-clock: between the "
              f"seeds of one configuration they differ by up to {spread:.1f}x here, so where the machine is shared "
              "they measure its load more than the cost of a schedule.", ""]
    return "\n".join(lines)


def write_plots(runs: list[dict], settings: tuple[Setting, ...], lrs: list[float], out: Path) -> None:
    for s in settings:
        for lr in lrs:
            cell = [r for r in runs if (r["setting"], r["lr"]) == (s.name, lr) and r["final_val_error"] is not None]
            if not cell:
                continue
            title = f"{s.model}, mnist10k, lr {lr:g}"
            fig = youden_from_results(cell, "final_train_error", "final_val_error", group_key="schedule",
                                      label_key="seed")
            fig.axes[0].set_title(f"{title} (marker = seed)")
            fig.savefig(out / f"youden_{s.name}_lr{lr:g}.png", dpi=120, bbox_inches="tight")
            histories: dict[str, list] = {}
            for r in cell:
                histories.setdefault(r["schedule"], []).append(r["_history"])
            curves_figure(histories, title).savefig(out / f"curves_{s.name}_lr{lr:g}.png", dpi=120)
        done = [r | {"group": f"{r['schedule']}, lr {r['lr']:g}"} for r in runs
                if r["setting"] == s.name and r["test_acc"] is not None]
        if done:
            fig = youden_from_results(done, "train_time", "test_acc", group_key="group", label_key="seed")
            ax = fig.axes[0]
            for line in [line for line in ax.get_lines() if line.get_label() == "y = x"]:
                line.remove()  # seconds against accuracy: the diagonal means nothing here
            for axis, key in ((ax.set_xlim, "train_time"), (ax.set_ylim, "test_acc")):
                values = [r[key] for r in done]
                pad = 0.05 * (max(values) - min(values) or 1)
                axis(min(values) - pad, max(values) + pad)
            ax.legend(fontsize=7)
            ax.set_title(f"{s.model}: train time (s) against test accuracy (marker = seed)")
            fig.savefig(out / f"time_acc_{s.name}.png", dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 seed, 1-2 epochs")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--workdir", type=Path, help="the run store (default bench/out/annealing[_quick])")
    parser.add_argument("--results", type=Path, help="default bench/results (quick: the work directory)")
    # one thread: these models are small, and more threads only contend on a shared CPU
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--analyse", action="store_true",
                        help="recompute the summary and verdict from the committed annealing.json (no training)")
    args = parser.parse_args()
    if args.analyse:
        return reanalyse(args.results or Path("bench/results"))
    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else FULL
    workdir = args.workdir or Path("bench/out/annealing" + ("_quick" if args.quick else ""))
    results = args.results or (workdir / "results" if args.quick else Path("bench/results"))
    wanted = run_grid(settings, args.lrs, workdir)
    runs = collect(workdir, wanted, settings)
    summary = summarise(runs)
    text = verdict(summary, settings)
    seconds = sum(r["train_time"] or 0.0 for r in runs)
    plots = results / "annealing"
    shutil.rmtree(plots, ignore_errors=True)  # no stale figures of an earlier grid
    plots.mkdir(parents=True)
    write_plots(runs, settings, args.lrs, plots)
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs]
    (results / "annealing.json").write_text(json.dumps(
        {"settings": [asdict(s) for s in settings], "lrs": args.lrs, "schedules": {s.name: schedules(s.period) for s in settings},
         "train_seconds": seconds, "summary": summary, "verdict": text, "runs": public}, indent=1))
    markdown = write_markdown(summary, settings, text, seconds)
    (results / "annealing.md").write_text(markdown)
    print(markdown)


def reanalyse(results: Path) -> None:
    """The summary, verdict and table again from the runs stored in annealing.json."""
    stored = json.loads((results / "annealing.json").read_text())
    settings = tuple(Setting(**(s | {"seeds": tuple(s["seeds"])})) for s in stored["settings"])
    summary = summarise(stored["runs"])
    text = verdict(summary, settings)
    (results / "annealing.json").write_text(json.dumps(stored | {"summary": summary, "verdict": text}, indent=1))
    markdown = write_markdown(summary, settings, text, stored["train_seconds"])
    (results / "annealing.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
