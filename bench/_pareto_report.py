"""What bench/pareto.py concludes and shows: Pareto fronts, the match and latency verdict, plots, markdown.

Pure functions of the aggregated configurations (one dict per width, activation and compressed or not, as
``pareto.aggregate`` and ``pareto.latency`` build them), so the tests drive them with synthetic lists.
"""

from __future__ import annotations

import statistics
from pathlib import Path

COMPRESSED = " -> pwl(knots=64)"  # the suffix compress_run gives a derived run's activation
BATCHES = ("b1", "b256")
LISTED = 5  # faster configurations named per verdict line in the markdown; the JSON has them all
ANSWERS = {True: "yes", False: "no", None: "not measured"}


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


def best_relu(configs: list[dict]) -> dict | None:
    """The ReLU configuration of highest mean accuracy; on a tie the first (narrowest) one."""
    relu = [c for c in configs if c["activation"] == "relu"]
    return max(relu, key=lambda c: c["acc_mean"]) if relu else None


def matches(configs: list[dict]) -> dict:
    """The smallest compressed learned model (by stored numbers) within one std of the best ReLU's
    accuracy, per family and overall, with ratios to the best and to the smallest matching ReLU."""
    best = best_relu(configs)
    if best is None:
        return {}
    threshold = best["acc_mean"] - best["acc_std"]
    size = lambda c: (c["stored"], c["flops"], -c["acc_mean"])  # noqa: E731
    smallest_relu = min((c for c in configs if c["activation"] == "relu" and c["acc_mean"] >= threshold), key=size)

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


def _brief(c: dict) -> dict:
    keys = ("width", "activation", "compressed", "seeds", "acc_mean", "acc_std", "latency_b1_ms", "latency_b256_ms")
    return {k: c.get(k) for k in keys}


def verdict(configs: list[dict]) -> dict:
    """Does a compressed learned model reach the best ReLU's accuracy at lower latency than that ReLU model?

    Two accuracy criteria: mean >= the best ReLU's mean ("mean"), and mean >= its mean minus its std over
    seeds ("mean_minus_std"). For each, and for batch 1 and 256: ``yes`` (None while a latency is missing),
    every qualifying compressed configuration strictly faster than the ReLU, fastest first, and the fastest
    qualifying one whether faster or not, each with its latency ratio to the ReLU's."""
    best = best_relu(configs)
    if best is None:
        return {}
    out = {"best_relu": _brief(best), "criteria": {}}
    for criterion, threshold in (("mean", best["acc_mean"]), ("mean_minus_std", best["acc_mean"] - best["acc_std"])):
        accurate = [c for c in configs if c["compressed"] and c["acc_mean"] >= threshold]
        entry = {"threshold": threshold, "accurate": len(accurate)}
        for batch in BATCHES:
            key, ref = f"latency_{batch}_ms", best.get(f"latency_{batch}_ms")
            timed = [] if ref is None else sorted((c for c in accurate if c.get(key) is not None), key=lambda c: c[key])
            ranked = [_brief(c) | {"latency_ratio": c[key] / ref} for c in timed]
            faster = [r for r in ranked if r["latency_ratio"] < 1]
            unknown = ref is None or len(timed) < len(accurate)
            entry[batch] = {"yes": True if faster else None if unknown else False, "faster": faster,
                            "fastest": ranked[0] if ranked else None}
        out["criteria"][criterion] = entry
    return out


def plot(dataset: str, configs: list[dict], match: dict, path: Path, fixed: list[str], learned: list[str]) -> None:
    """Accuracy against stored numbers, FLOPs and batch-256 latency, with the Pareto fronts of ReLU and of
    the compressed models; ``fixed`` and ``learned`` (canonical names) fix the colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    panels = [("stored", "numbers stored at inference"), ("flops", "FLOPs per sample"),
              ("latency_b256_ms", "latency per batch of 256, ms")]
    colors = dict(zip(fixed + learned, ["black", "gray", "tab:blue", "tab:orange", "tab:green", "tab:red"]))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    # the y range of ReLU and the compressed models: one failed configuration (e.g. sigmoid) would squash it
    shown = [100 * c["acc_mean"] for c in configs if c["activation"] == "relu" or c["compressed"]]
    bottom = min(shown) - 3 if shown else 0
    top = min(100.5, max(100 * (c["acc_mean"] + c["acc_std"]) for c in configs) + 0.5)
    clipped = sum(100 * c["acc_mean"] < bottom for c in configs)
    for ax, (key, label) in zip(axes, panels):
        for c in configs:
            filled = c["compressed"] or c["activation"] in fixed
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


def _acc(c: dict) -> str:
    return f"{100 * c['acc_mean']:.2f} ± {100 * c['acc_std']:.2f} % over {c['seeds']} seeds"


def verdict_lines(v: dict, noise: dict[str, float]) -> list[str]:
    """The verdict as markdown: per criterion and batch size a bold yes or no and the configurations."""
    if not v:
        return ["", "No finished ReLU configuration: no latency verdict."]
    best = v["best_relu"]
    lines = ["", f"**Latency verdict.** Does a compressed learned model reach the accuracy of the best ReLU model "
             f"(width {best['width']}, {_acc(best)}) at lower latency than it ({_num(best['latency_b1_ms'], '.3f')} "
             f"ms at batch 1, {_num(best['latency_b256_ms'], '.2f')} ms at batch 256)? Latency ratio = compressed "
             "model / that ReLU, below 1 is faster.", ""]
    names = {"mean": "mean ≥ best ReLU mean", "mean_minus_std": "mean ≥ best ReLU mean − its std"}
    for criterion, entry in v["criteria"].items():
        lines.append(f"- {names[criterion]} (≥ {100 * entry['threshold']:.2f} %): {entry['accurate']} compressed "
                     "configuration(s) qualify.")
        for batch in BATCHES:
            b = entry[batch]
            head = f"  - batch {batch[1:]}: **{ANSWERS[b['yes']]}**"
            if b["yes"]:
                named = [f"{_label(c)}, {_acc(c)}, {c['latency_ratio']:.2f}x" for c in b["faster"][:LISTED]]
                more = len(b["faster"]) - LISTED
                lines.append(f"{head}: " + "; ".join(named) + (f"; and {more} more (pareto.json)" if more > 0 else ""))
            elif b["fastest"]:
                c = b["fastest"]
                lines.append(f"{head}; the fastest that qualifies, {_label(c)} ({_acc(c)}), takes "
                             f"{c['latency_ratio']:.2f}x the ReLU's time")
            else:
                lines.append(head + ("; none qualifies" if b["yes"] is False else ""))
    lines += ["", f"A ratio within the latency noise ({100 * noise['b1']:.0f} % at batch 1, {100 * noise['b256']:.0f} "
              "% at batch 256, see above) is no clear difference."]
    return lines


def markdown(result: dict) -> str:
    cpu = result.get("cpu", {})
    lines = ["# Fewer parameters for the same accuracy: width sweep", "",
             f"CPU: {cpu.get('name', '?')} ({cpu.get('isa', '?')}). Seeds {result['seeds']}; accuracy is test accuracy, mean ± std over seeds. Stored = parameters + "
             "buffers at inference (lookup tables included); FLOPs per sample by `model_cost` (ReLU = 1 flop per "
             "element, a 64-knot table 8, transcendental functions 10); latency of the lowest seed's model: "
             f"`measure_latency` ({result['latency_repeats']} calls) at {result['threads']} thread(s), repeated in "
             f"{result['latency_rounds']} rounds that visit every model of a dataset in turn, median over rounds; "
             "the machine is a shared 2-core one, so latencies are noisy. "
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
        noise = {b: statistics.median(c[f"latency_{b}_spread"] for c in d["configs"]) for b in BATCHES}
        lines += ["", f"Latency noise: interquartile range over the {result['latency_rounds']} rounds, relative to "
                  f"the median, median over configurations: {100 * noise['b1']:.0f} % at batch 1, "
                  f"{100 * noise['b256']:.0f} % at batch 256."]
        if undercounted:
            lines += ["", "† `model_cost` counts fewer activation FLOPs for this learned model than for its 64-knot "
                      "table (8 per element): its custom kernel is counted as about one operation per element, "
                      "because the family has no `flops_per_element`. An undercount: read it as a lower bound."]
        lines += verdict_lines(d["verdict"], noise)
        m = d["match"]
        if not m:
            lines += ["", f"![{d['name']}]({d['plot']})", ""]
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
