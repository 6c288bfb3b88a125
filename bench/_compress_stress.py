"""The stress set for bench/compress_accuracy.py: compressed models on inputs beyond their calibration range.

Every finished learned run of the source store (read only) is compressed with
each method at its default size (``pwl(knots=64)``, ``cubic(knots=64)``,
``poly(degree=6)``), once with the tails taken from the target (the default)
and once with the end segments' tails (before issue 16), and compared with
the original on the test split and on the **stress set**, the same test
inputs times 2, which drives every activation site beyond the range it was
fitted on: test accuracy of both, the share of predictions kept, and the
max / mean change of the logits.
"""

from __future__ import annotations

import statistics

import torch

from actlab.compress import CompressSpec, compress_model
from actlab.experiments.runs import load_run
from actlab.store import RunStore

METHODS = ("pwl", "cubic", "poly")
TAILS = ("edge", "target")
STRESS = 2.0
CALIBRATION = 2048


@torch.no_grad()
def _compare(model, compressed, x, y) -> dict:
    a, b = model(x), compressed(x)
    diff = (a - b).abs()
    return {"acc_original": float((a.argmax(1) == y).double().mean()),
            "acc_compressed": float((b.argmax(1) == y).double().mean()),
            "kept": float((a.argmax(1) == b.argmax(1)).double().mean()),
            "logit_max": float(diff.max()), "logit_mean": float(diff.mean())}


def stress_rows(source_dir, experiments, is_learned, seeds, progress=print) -> list[dict]:
    """One row per (run, method, tails), for the runs of ``seeds``."""
    store = RunStore(source_dir, create=False)
    runs = [r for r in store.runs() if r["experiment"] in experiments and r["status"] == "done"
            and is_learned(r["config"]["activation"]) and r["config"]["seed"] in seeds]
    rows = []
    for i, run in enumerate(runs):
        trained = load_run(store, run["run_id"])
        model, data = trained.model.eval(), trained.data
        x, y = data.test.x, data.test.y
        for method in METHODS:
            spec = CompressSpec.of(method, default=True)
            for tails in TAILS:
                compressed, _ = compress_model(model, **spec.kwargs(), calibration=data.train.x[:CALIBRATION],
                                               tails=tails)
                compressed.eval()
                row = {"experiment": run["experiment"], "activation": run["config"]["activation"],
                       "seed": run["config"]["seed"], "run_id": run["run_id"], "method": spec.label(),
                       "tails": tails}
                for key, scale in (("test", 1.0), ("stress", STRESS)):
                    row |= {f"{key}_{k}": v for k, v in _compare(model, compressed, x * scale, y).items()}
                rows.append(row)
        progress(f"stress set: {i + 1}/{len(runs)} runs ({run['experiment']} {run['config']['activation']} "
                 f"seed {run['config']['seed']})")
    store.close()
    return rows


def _ms(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if len(values) == 1:
        return f"{scale * values[0]:.{digits}f}"
    return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def stress_markdown(rows: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["activation"], r["method"], r["tails"]), []).append(r)
    seeds = sorted({r["seed"] for r in rows})
    lines = ["# Compressed models beyond their calibration range (stress set)", "",
             "Each learned run of the accuracy bench compressed with each method at its default size, with the "
             "tails taken from the target (`target`, the default since issue 16) or from the fitted form's end "
             "segments (`edge`, before). Test split, and the stress set = the same test inputs x2. Accuracy change "
             "= compressed - original (pp); predictions kept = same predicted class; logit change = max |original "
             f"- compressed| over the set. Mean ± std over seeds {seeds} (n per row in the seeds column).", "",
             "| dataset | activation | method | tails | seeds | test: acc change pp | stress: original acc % "
             "| stress: acc change pp | stress: predictions kept % | test: max logit change "
             "| stress: max logit change |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (experiment, activation, method, tails), g in groups.items():
        lines.append(
            f"| {experiment.removeprefix('accuracy_')} | {activation} | {method} | {tails} | {len(g)} | "
            f"{_ms([r['test_acc_compressed'] - r['test_acc_original'] for r in g], 100)} | "
            f"{_ms([r['stress_acc_original'] for r in g], 100)} | "
            f"{_ms([r['stress_acc_compressed'] - r['stress_acc_original'] for r in g], 100)} | "
            f"{_ms([r['stress_kept'] for r in g], 100)} | {_ms([r['test_logit_max'] for r in g], 1, 3)} | "
            f"{_ms([r['stress_logit_max'] for r in g], 1, 3)} |")
    lines += ["", "Over all runs (median of the per-run max logit change on the stress set, and mean predictions "
              "kept):", "", "| method | tails | runs | median stress max logit change | stress predictions kept % |",
              "|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        for tails in TAILS:
            g = [r for r in rows if r["method"] == method and r["tails"] == tails]
            if g:
                lines.append(f"| {method} | {tails} | {len(g)} | "
                             f"{statistics.median(r['stress_logit_max'] for r in g):.3g} | "
                             f"{100 * statistics.fmean(r['stress_kept'] for r in g):.2f} |")
    return "\n".join(lines) + "\n"
