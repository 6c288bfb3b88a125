"""The HTML report of a work directory: results table and plots, one self-contained page."""

from __future__ import annotations

import base64
import importlib
import html
import io
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from actlab.experiments import plots
from actlab.experiments.results import export, fmt_pm
from actlab.store import RunStore

# Extra sections register here: fn(store, rows) -> list of (title, html). The parts' report
# modules append to it on import; write_report imports them, so no caller has to.
SECTIONS: list[Callable[[RunStore, list[dict]], list[tuple[str, str]]]] = []
SECTION_MODULES = ("actlab.annealing.report", "actlab.search.report")


def figure_html(fig: Figure, alt: str = "") -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(summary: list[dict]) -> str:
    head = ["experiment", "dataset", "model", "activation", "seeds", "test acc % (mean ± std)", "macro F1 %",
            "params", "train s"]
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in summary:
        notes = "".join(f" ({r[k]} {k})" for k in ("diverged", "failed", "unfinished") if r[k])
        cells = [r["experiment"], r["dataset"], r["model"], r["activation"], f"{r['seeds']}{notes}",
                 fmt_pm(r["test_acc_mean"], r["test_acc_std"]), fmt_pm(r["test_f1_mean"], r["test_f1_std"]),
                 f"{r['params']:,}" if r["params"] else "—", f"{r['train_time_mean']:.1f}"]
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return "\n".join(out) + "</table>"


def _curves_and_shapes(store: RunStore, rows: list[dict]) -> list[tuple[str, str]]:
    sections = []
    by_setting: dict[tuple, dict[str, list[dict]]] = {}
    for row in rows:
        key = (row["experiment"], row["dataset"], row["model"])
        by_setting.setdefault(key, {}).setdefault(row["activation"], []).append(row)
    for (experiment, dataset, model), by_act in by_setting.items():
        histories = {act: [store.history(r["run_id"]) for r in runs] for act, runs in by_act.items()}
        parts = [figure_html(plots.training_curves(histories, key, title=f"{key} — {model}"), key)
                 for key in ("val_acc", "train_loss")]
        shapes = []
        for act, runs in by_act.items():
            first = min(runs, key=lambda r: r["seed"])
            before = store.artifact(first["run_id"], "curves_before") or {}
            after = store.artifact(first["run_id"], "curves_after") or {}
            if before or after:
                fig = plots.activation_shapes(before, after, title=f"{act} (seed {first['seed']})")
                shapes.append(figure_html(fig, act))
        body = "".join(parts) + "<h4>Activation shapes: dashed before, solid after training</h4>" + "".join(shapes)
        sections.append((f"{experiment}: {dataset}, {model}", body))
    return sections


def write_report(workdir: str | Path, title: str = "actlab report") -> Path:
    """Write ``report.html`` (and the CSV tables) into ``workdir``; return its path."""
    store = RunStore(workdir, create=False)
    rows, summary = export(store)
    sections = _curves_and_shapes(store, rows)
    for module in SECTION_MODULES:
        importlib.import_module(module)
    for extra in SECTIONS:
        sections += extra(store, rows)
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:49%}")
    body = "".join(f"<h2>{html.escape(t)}</h2>{b}" for t, b in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Work directory: {html.escape(str(store.workdir))}. Accuracy is mean ± std over the seeds listed."
            f"</p>{_table(summary)}{body}</body></html>")
    path = store.workdir / "report.html"
    path.write_text(page)
    store.close()
    return path
