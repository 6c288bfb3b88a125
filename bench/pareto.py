"""Fewer parameters for the same accuracy? A width sweep of fixed and learned activations (issue 5).

MLPs with two hidden layers of width w on titanic and banknote, the CNN with
C channels per convolution on mnist10k; relu and sigmoid against the learned
families, the learned ones also after compression (``compress_run`` defaults:
a 64-knot lookup table per site). Training goes through the experiment
runner into ``--workdir`` (resumable: re-running skips finished runs and
compressions). Per configuration: test accuracy (mean ± std over seeds),
trainable parameters, numbers stored at inference (parameters + buffers such
as lookup tables), FLOPs per sample (``model_cost``) and latency at batch 1
and 256 of the lowest seed's model (``measure_latency`` at 1 thread, in
rounds that visit every model of the dataset in turn, so that the load of a
shared machine falls on all alike; the median over rounds). Accuracy against
stored numbers, FLOPs and batch-256 latency is plotted with Pareto fronts,
one figure per dataset.

    python bench/pareto.py --quick                # 1 seed, 1 epoch: timing, and a projection of the full sweep
    python bench/pareto.py                        # full: 3 seeds -> bench/results/pareto.{json,md,*.png}
    python bench/pareto.py --no-cnn-subnet        # the full sweep without subnet on the CNN (it is slow)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import actlab
from actlab.activations import canonical
from actlab.compress import compress_model, measure_latency
from actlab.compress.stored import compress_run, inference_cost
from actlab.experiments import parse_config, run_experiment
from actlab.experiments.runner import checkpoint_path, load_dataset_spec
from actlab.models import make_model
from actlab.store import RunStore

FIXED = ["relu", "sigmoid"]
LEARNED = ["slaf(degree=4,basis=chebyshev)", "spline(knots=32)", "rational", "subnet(hidden=8)"]
SETTINGS = {
    # dataset: (model template, widths, epochs, batch size, learning rate); tabular as in bench/accuracy.py
    "titanic": ("mlp(widths=[{w},{w}])", [2, 4, 8, 16, 32], 30, 32, 3e-3),
    "banknote": ("mlp(widths=[{w},{w}])", [2, 4, 8, 16, 32], 30, 32, 3e-3),
    "mnist10k": ("cnn(channels={w})", [2, 4, 8, 16], 3, 64, 2e-3),
}
SEEDS = [0, 1, 2]
LATENCY_ROUNDS, LATENCY_REPEATS = 7, 5
CALIBRATION = 2048  # training inputs that fit a table: compress_run's default
COMPRESSED = " -> pwl(knots=64)"  # the suffix compress_run gives a derived run's activation
OUT = Path(__file__).parent


def experiment(dataset: str, seeds: list[int], epochs: int, cnn_subnet: bool) -> dict:
    template, widths, _, batch, lr = SETTINGS[dataset]
    acts = FIXED + [a for a in LEARNED if cnn_subnet or dataset != "mnist10k" or not a.startswith("subnet")]
    return {"name": f"pareto_{dataset}", "datasets": [dataset], "models": [template.format(w=w) for w in widths],
            "activations": acts, "seeds": seeds, "epochs": epochs, "batch_size": batch, "lr": lr}


def is_learned(activation: str) -> bool:
    return activation.split("(")[0] in {a.split("(")[0] for a in LEARNED}


def measure(workdir: Path, name: str) -> None:
    """Compress every finished learned run and cost every fixed one, once each."""
    store = RunStore(workdir, create=False)
    runs = [r for r in store.runs(name) if r["status"] == "done" and "compressed_from" not in r["config"]]
    derived = {r["config"]["compressed_from"] for r in store.runs(name) if r["status"] == "done"
               and r["config"]["activation"].endswith(COMPRESSED)}
    data = None
    for run in runs:
        cfg = run["config"]
        if is_learned(cfg["activation"]):
            if run["run_id"] not in derived:
                compress_run(workdir, run["run_id"], latency=False)  # stores the costs of both models
        elif store.artifact(run["run_id"], "inference_cost") is None:
            if data is None:
                data = load_dataset_spec(cfg["dataset"])
            cost = inference_cost(load_model(workdir, cfg, data, run["run_id"]), data.test.x, latency=False)
            store.put_artifact(run["run_id"], "inference_cost", cost)
    store.close()


def load_model(workdir: Path, cfg: dict, data, rid: str) -> torch.nn.Module:
    torch.manual_seed(cfg["seed"])
    model = make_model(cfg["model"], data.input_shape, data.num_classes, cfg["activation"])
    model.load_state_dict(torch.load(checkpoint_path(workdir, rid), weights_only=True))
    return model.eval()


def latency(workdir: Path, name: str, widths: dict[str, int]) -> dict[tuple, dict]:
    """Latency per (width, activation, compressed), from the lowest finished seed's model; learned
    models also compressed as compress_run does by default. Rounds interleave the models."""
    store = RunStore(workdir, create=False)
    runs = sorted((r for r in store.runs(name) if r["status"] == "done" and "compressed_from" not in r["config"]),
                  key=lambda r: r["config"]["seed"])
    store.close()
    models, data = {}, None
    for run in runs:
        cfg = run["config"]
        key = (widths[cfg["model"]], cfg["activation"])
        if (*key, False) in models:
            continue
        if data is None:
            data = load_dataset_spec(cfg["dataset"])
        models[(*key, False)] = load_model(workdir, cfg, data, run["run_id"])
        if is_learned(cfg["activation"]):
            compressed, _ = compress_model(models[(*key, False)], "pwl", knots=64,
                                           calibration=data.train.x[:CALIBRATION])
            models[(*key, True)] = compressed.eval()
    times: dict[tuple, dict[int, list[float]]] = {key: {1: [], 256: []} for key in models}
    for _ in range(LATENCY_ROUNDS):
        for key, model in models.items():
            for batch, t in measure_latency(model, tuple(data.input_shape), (1, 256), LATENCY_REPEATS, 1).items():
                times[key][batch].append(t)
    return {key: {"latency_b1_ms": 1e3 * statistics.median(t[1]), "latency_b256_ms": 1e3 * statistics.median(t[256]),
                  "latency_b1_spread": spread(t[1]), "latency_b256_spread": spread(t[256])} for key, t in times.items()}


def spread(values: list[float]) -> float:
    """Interquartile range over median: how much the rounds disagree."""
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / statistics.median(values)


def run_rows(workdir: Path, name: str, widths: dict[str, int]) -> list[dict]:
    """One row per trained or compressed run: accuracy and costs (None while not measured)."""
    store = RunStore(workdir, create=False)
    runs = store.runs(name)
    by_id = {r["run_id"]: r for r in runs}
    rows = []
    for run in runs:
        cfg, info = run["config"], run["info"]
        source = by_id.get(cfg.get("compressed_from"), run)
        compressed = source is not run
        if compressed:
            cost, params = info["cost"], info["cost"]["params"]
        elif is_learned(cfg["activation"]):
            twin = next((r for r in runs if r["config"].get("compressed_from") == run["run_id"]), None)
            cost, params = (twin["info"]["original_cost"] if twin else None), info.get("params")
        else:
            cost, params = store.artifact(run["run_id"], "inference_cost"), info.get("params")
        if cost is not None:  # latencies come from latency(), measured for all models alike
            cost = {k: v for k, v in cost.items() if not k.startswith("latency")}
        rows.append({"dataset": info.get("dataset_description", cfg["dataset"]), "width": widths[cfg["model"]],
                     "model": cfg["model"], "activation": source["config"]["activation"], "compressed": compressed,
                     "seed": cfg["seed"], "status": run["status"], "acc": run["test"].get("acc"),
                     "params": params, "cost": cost, "train_time": info.get("train_time")})
    store.close()
    return rows


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean ± std of accuracy over seeds per (width, activation, compressed); costs as medians."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["width"], row["activation"], row["compressed"]), []).append(row)
    out = []
    for (width, activation, compressed), members in sorted(groups.items(), key=lambda kv: kv[0]):
        done = [r for r in members if r["status"] == "done" and r["cost"] is not None]
        if not done:
            continue
        accs = [r["acc"] for r in done]
        cost = {k: _median([r["cost"].get(k) for r in done])
                for k in ("flops", "activation_flops", "stored")}
        out.append({"width": width, "model": members[0]["model"], "activation": activation,
                    "compressed": compressed, "seeds": len(done),
                    "diverged": sum(r["status"] == "diverged" for r in members),
                    "acc_mean": statistics.fmean(accs), "acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                    "params": int(_median([r["params"] for r in done])), **cost})
    return out


def flops_undercounted(config: dict, configs: list[dict]) -> bool:
    """A learned model counted cheaper than the table that replaces it. For the families of this sweep the
    formulas of actlab.compress.cost give at least the table's 8 flops per element (rational 5/4: 21,
    slaf chebyshev degree 4: 16, linear spline: 8, subnet: more), so such a count missed work."""
    twin = next((c for c in configs if c["compressed"] and not config["compressed"]
                 and (c["width"], c["activation"]) == (config["width"], config["activation"])), None)
    return twin is not None and (config.get("activation_flops") or 0) < (twin.get("activation_flops") or 0)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (cost no higher and accuracy no lower, one strictly),
    by increasing cost."""
    front = []
    for i, (c, a) in enumerate(points):
        if not any((c2 <= c and a2 >= a) and (c2 < c or a2 > a) for c2, a2 in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def matches(configs: list[dict]) -> dict:
    """The smallest compressed learned model (by stored numbers) within one std of the best ReLU's
    accuracy, per family and overall, with ratios to the best and to the smallest matching ReLU."""
    relu = [c for c in configs if c["activation"] == "relu"]
    if not relu:
        return {}
    best = max(relu, key=lambda c: c["acc_mean"])
    threshold = best["acc_mean"] - best["acc_std"]
    size = lambda c: (c["stored"], c["flops"], -c["acc_mean"])  # noqa: E731
    smallest_relu = min((c for c in relu if c["acc_mean"] >= threshold), key=size)

    def ratios(c: dict, ref: dict) -> dict:
        return {k: c[k] / ref[k] for k in ("params", "stored", "flops", "latency_b1_ms", "latency_b256_ms")
                if c.get(k) and ref.get(k)}

    per_family = {}
    for family in sorted({c["activation"] for c in configs if c["compressed"]}):
        hits = [c for c in configs if c["compressed"] and c["activation"] == family and c["acc_mean"] >= threshold]
        hit = min(hits, key=size) if hits else None
        per_family[family] = None if hit is None else {
            "config": hit, "vs_best_relu": ratios(hit, best), "vs_smallest_matching_relu": ratios(hit, smallest_relu)}
    found = [v for v in per_family.values() if v]
    return {"best_relu": best, "threshold": threshold, "smallest_matching_relu": smallest_relu,
            "per_family": per_family, "overall": min(found, key=lambda v: size(v["config"])) if found else None}


def plot(dataset: str, configs: list[dict], match: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [("stored", "numbers stored at inference"), ("flops", "FLOPs per sample"),
              ("latency_b256_ms", "latency per batch of 256, ms")]
    colors = dict(zip(FIXED + [canonical(a) for a in LEARNED], ["black", "gray", "tab:blue", "tab:orange",
                                                                  "tab:green", "tab:red"]))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    # the y range of ReLU and the compressed models: one failed configuration (e.g. sigmoid) would squash it
    shown = [100 * c["acc_mean"] for c in configs if c["activation"] == "relu" or c["compressed"]]
    bottom = min(shown) - 3 if shown else 0
    top = min(100.5, max(100 * (c["acc_mean"] + c["acc_std"]) for c in configs) + 0.5)
    clipped = sum(100 * c["acc_mean"] < bottom for c in configs)
    for ax, (key, label) in zip(axes, panels):
        for c in configs:
            filled = c["compressed"] or c["activation"] in FIXED
            ax.errorbar(c[key], 100 * c["acc_mean"], yerr=100 * c["acc_std"], fmt="o" if filled else "s",
                        color=colors.get(c["activation"], "purple"), mfc=None if filled else "none", ms=5,
                        alpha=0.8, elinewidth=0.6)
        fronts = {"ReLU": [c for c in configs if c["activation"] == "relu"],
                  "learned, compressed": [c for c in configs if c["compressed"]]}
        for (name, members), style in zip(fronts.items(), ("k--", "r-")):
            front = [members[i] for i in pareto_front([(c[key], c["acc_mean"]) for c in members])]
            if not front:
                continue
            # the last step runs to the right edge, so a front of one point shows as well
            xs = [c[key] for c in front] + [max(c[key] for c in configs)]
            ys = [100 * c["acc_mean"] for c in front] + [100 * front[-1]["acc_mean"]]
            ax.plot(xs, ys, style, lw=1.2, drawstyle="steps-post", label=f"Pareto front: {name}")
        if match:
            ax.axhline(100 * match["threshold"], color="k", ls=":", lw=0.8, label="best ReLU - 1 std")
        ax.set_xscale("log")
        ax.set_ylim(bottom, top)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels on minor ticks overlap
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=col, label=act) for act, col in colors.items()
               if any(c["activation"] == act for c in configs)]
    handles += [plt.Line2D([], [], marker="s", ls="", mfc="none", color="k", label="learned, not compressed")]
    handles += axes[0].get_legend_handles_labels()[0]
    axes[2].legend(handles=handles, fontsize=7, loc="lower right")
    below = f"; {clipped} configuration(s) below {bottom:.0f} % not shown" if clipped else ""
    fig.suptitle(f"{dataset}: filled = fixed or compressed (pwl 64), hollow = learned before compression{below}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _num(v: float | None, fmt: str = ",.0f") -> str:
    return "—" if v is None else format(v, fmt)


def _ratio_text(r: dict) -> str:
    return (f"trainable params {r.get('params', float('nan')):.2f}x, stored {r.get('stored', float('nan')):.2f}x, "
            f"FLOPs {r.get('flops', float('nan')):.2f}x, latency b1 {r.get('latency_b1_ms', float('nan')):.2f}x, "
            f"b256 {r.get('latency_b256_ms', float('nan')):.2f}x")


def _label(c: dict) -> str:
    return f"{c['activation']}{COMPRESSED if c['compressed'] else ''} at width {c['width']}"


def markdown(result: dict) -> str:
    lines = ["# Fewer parameters for the same accuracy: width sweep", "",
             f"Seeds {result['seeds']}; accuracy is test accuracy, mean ± std over seeds. Stored = parameters + "
             "buffers at inference (lookup tables included); FLOPs per sample by `model_cost` (ReLU = 1 flop per "
             "element, a 64-knot table 8, transcendental functions 10); latency of the lowest seed's model: "
             f"`measure_latency` ({LATENCY_REPEATS} calls) at {result['threads']} thread(s), repeated in "
             f"{LATENCY_ROUNDS} rounds that visit every model of a dataset in turn, median over rounds; the "
             "machine is a shared 2-core one, so latencies are noisy. "
             "Compressed = `compress_run` defaults: a 64-knot lookup table per activation site.", ""]
    for d in result["datasets"]:
        lines += [f"## {d['description']}", "",
                  f"Model `{d['template']}`, widths {d['widths']}; {d['epochs']} epochs, batch {d['batch_size']}, "
                  f"Adam lr {d['lr']}; activations: {', '.join(d['activations'])}. Training time, summed over runs: "
                  f"{d['train_time_total_s'] / 60:.1f} min.", ""]
        lines += [f"Note: {n}" for n in d["notes"]] + ([""] if d["notes"] else [])
        lines += ["| width | activation | seeds | test acc % | trainable params | stored | FLOPs / sample "
                  "| latency b1 ms | latency b256 ms |", "|---|---|---|---|---|---|---|---|---|"]
        undercounted = False
        for c in d["configs"]:
            seeds = f"{c['seeds']}" + (f" ({c['diverged']} diverged)" if c["diverged"] else "")
            mark = "†" if flops_undercounted(c, d["configs"]) else ""
            undercounted |= bool(mark)
            lines.append(f"| {c['width']} | {c['activation']}{COMPRESSED if c['compressed'] else ''} | {seeds} | "
                         f"{100 * c['acc_mean']:.2f} ± {100 * c['acc_std']:.2f} | {c['params']:,} | "
                         f"{_num(c['stored'])} | {_num(c['flops'])}{mark} | {_num(c['latency_b1_ms'], '.3f')} | "
                         f"{_num(c['latency_b256_ms'], '.2f')} |")
        noise = {b: statistics.median(c[f"latency_{b}_spread"] for c in d["configs"]) for b in ("b1", "b256")}
        lines += ["", f"Latency noise: interquartile range over the {LATENCY_ROUNDS} rounds, relative to the median, "
                  f"median over configurations: {100 * noise['b1']:.0f} % at batch 1, {100 * noise['b256']:.0f} % "
                  "at batch 256."]
        if undercounted:
            lines += ["", "† `model_cost` counts fewer activation FLOPs for this learned model than for its 64-knot "
                      "table (8 per element): its custom kernel is counted as about one operation per element, "
                      "because the family has no `flops_per_element`. An undercount: read it as a lower bound."]
        m = d["match"]
        if not m:
            lines += ["", "No finished ReLU configuration: no comparison.", ""]
            continue
        best, small = m["best_relu"], m["smallest_matching_relu"]
        lines += ["", f"Best ReLU: width {best['width']}, {100 * best['acc_mean']:.2f} ± {100 * best['acc_std']:.2f}"
                  f" %; target (mean - 1 std): {100 * m['threshold']:.2f} %. Smallest ReLU reaching it: width "
                  f"{small['width']} ({100 * small['acc_mean']:.2f} %, {small['stored']:,} stored).", "",
                  "Smallest compressed learned model reaching the target, per family (by stored numbers):", ""]
        for family, hit in m["per_family"].items():
            if hit is None:
                lines.append(f"- {family}: none")
                continue
            c = hit["config"]
            lines.append(f"- {family}: width {c['width']}, {100 * c['acc_mean']:.2f} ± {100 * c['acc_std']:.2f} %, "
                         f"{c['stored']:,} stored; vs best ReLU: {_ratio_text(hit['vs_best_relu'])}; vs smallest "
                         f"matching ReLU: {_ratio_text(hit['vs_smallest_matching_relu'])}")
        overall = m["overall"]
        lines += ["", "**Overall: " + ("none**" if overall is None else f"{_label(overall['config'])}** — vs best "
                  f"ReLU: {_ratio_text(overall['vs_best_relu'])}; vs smallest matching ReLU: "
                  f"{_ratio_text(overall['vs_smallest_matching_relu'])}"), "",
                  f"![{d['name']}]({d['plot']})", ""]
    return "\n".join(lines) + "\n"


def projection(rows: list[dict], wall: dict[str, float], quick_epochs: dict[str, int]) -> list[str]:
    """Full-sweep time from a quick one: training scales with epochs and seeds, the rest with seeds."""
    lines = []
    total = no_subnet = 0.0
    for dataset, (_, _, epochs, _, _) in SETTINGS.items():
        mine = [r for r in rows if r["dataset_key"] == dataset and not r["compressed"] and r["train_time"]]
        if not mine:
            continue
        scale = epochs / quick_epochs[dataset] * len(SEEDS)
        train = sum(r["train_time"] for r in mine) * scale
        subnet = sum(r["train_time"] for r in mine if r["activation"].startswith("subnet")) * scale
        other = (wall[dataset] - sum(r["train_time"] for r in mine)) * len(SEEDS)
        total += train + other
        no_subnet += train + other - (subnet if dataset == "mnist10k" else 0.0)
        lines.append(f"{dataset}: training ~{train / 60:.1f} min (subnet {subnet / 60:.1f}), "
                     f"other (setup, compression, costs) ~{other / 60:.1f} min")
    lines.append(f"projected full sweep: ~{total / 60:.0f} min; without subnet on the CNN ~{no_subnet / 60:.0f} min "
                 "(subnet compression time not subtracted)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch; prints a projection of the full sweep")
    parser.add_argument("--workdir", type=Path, default=OUT / "out" / "pareto")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-cnn-subnet", action="store_true", help="leave subnet out of the mnist10k CNN sweep")
    parser.add_argument("--datasets", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    assert actlab.ACTIVATIONS  # registers every family
    workdir = args.workdir / ("quick" if args.quick else "full")
    results = workdir if args.quick else OUT / "results"  # only the full sweep is committed
    results.mkdir(parents=True, exist_ok=True)
    seeds = [0] if args.quick else SEEDS
    out, all_rows, wall, quick_epochs = [], [], {}, {}
    for dataset in args.datasets:
        template, widths, epochs, batch, lr = SETTINGS[dataset]
        epochs = 1 if args.quick else epochs
        quick_epochs[dataset] = epochs
        spec = experiment(dataset, seeds, epochs, not args.no_cnn_subnet)
        cfg = parse_config(spec, source="pareto bench")
        width_of = {canonical(template.format(w=w)): w for w in widths}
        start = time.perf_counter()
        run_experiment(cfg, workdir, progress=False).close()
        trained = time.perf_counter()
        measure(workdir, cfg.name)
        measured = time.perf_counter()
        times = latency(workdir, cfg.name, width_of)
        wall[dataset] = time.perf_counter() - start
        print(f"{dataset}: trained in {trained - start:.0f} s, compressed and costed in {measured - trained:.0f} s, "
              f"latency in {start + wall[dataset] - measured:.0f} s", flush=True)
        rows = run_rows(workdir, cfg.name, width_of)
        all_rows += [r | {"dataset_key": dataset} for r in rows]
        configs = [c | times.get((c["width"], c["activation"], c["compressed"]), {}) for c in aggregate(rows)]
        match = matches(configs)
        plot_path = results / f"pareto_{dataset}.png"
        plot(rows[0]["dataset"], configs, match, plot_path)
        notes = [] if dataset != "mnist10k" or not args.no_cnn_subnet else [
            "subnet is left out of the CNN sweep (--no-cnn-subnet): its training is about 10x slower per step "
            "than ReLU's and the full sweep would have exceeded the time budget."]
        out.append({"name": dataset, "description": rows[0]["dataset"], "template": template.format(w="w"),
                    "widths": widths, "epochs": epochs, "batch_size": batch, "lr": lr, "activations": cfg.activations,
                    "notes": notes, "configs": configs, "match": match, "plot": plot_path.name,
                    "train_time_total_s": sum(r["train_time"] or 0.0 for r in rows),
                    "this_invocation_s": wall[dataset]})
    result = {"seeds": seeds, "threads": args.threads, "datasets": out, "runs": all_rows}
    (results / "pareto.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (results / "pareto.md").write_text(text)
    print(text)
    if args.quick:
        print("\n".join(projection(all_rows, wall, quick_epochs)))


if __name__ == "__main__":
    main()
