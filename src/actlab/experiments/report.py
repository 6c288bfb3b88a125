"""The HTML report of a work directory: results table and plots, one self-contained page."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from actlab.annealing.report import annealing_section
from actlab.experiments.compare import compare
from actlab.experiments.results import export, fmt_pm
from actlab.plots import activation_shapes, curves_plot, figure_html, saving_pngs
from actlab.search.report import search_section
from actlab.store import RunStore

Section = Callable[[RunStore, list[dict]], list[tuple[str, str]]]


def _compare_cells(rows: list[dict], baseline: str = "relu") -> dict[tuple, tuple[str, str, str]]:
    """Per (experiment, dataset, model, activation): test accuracy − the baseline's, its 95 % interval,
    the Holm-corrected p-value and the verdict (``actlab compare``); empty without a baseline."""
    if baseline not in {r["activation"] for r in rows}:
        return {}
    out = {}
    for c in compare(rows, baseline=baseline, boots=2000):
        interval = "" if c.test == "none" else f" [{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}]"
        p = "—" if c.p_holm != c.p_holm else f"{c.p_holm:.3g}"
        out[(c.experiment, c.dataset, c.model, c.activation)] = (f"{100 * c.diff:+.2f}{interval}", p, c.verdict)
    return out


def _table(summary: list[dict], rows: list[dict]) -> str:
    vs = _compare_cells(rows)
    head = ["experiment", "dataset", "model", "activation", "seeds", "test acc % (mean ± std)", "macro F1 %",
            "params", "train s"] + (["Δ acc vs relu, pp [95 % CI]", "p (Holm)", "verdict"] if vs else [])
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in summary:
        notes = "".join(f" ({r[k]} {k})" for k in ("diverged", "failed", "unfinished") if r[k])
        cells = [r["experiment"], r["dataset"], r["model"], r["activation"], f"{r['seeds']}{notes}",
                 fmt_pm(r["test_acc_mean"], r["test_acc_std"]), fmt_pm(r["test_f1_mean"], r["test_f1_std"]),
                 f"{r['params']:,}" if r["params"] else "—", f"{r['train_time_mean']:.1f}"]
        if vs:
            cells += vs.get((r["experiment"], r["dataset"], r["model"], r["activation"]), ("baseline", "", ""))
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
        parts = [figure_html(curves_plot(histories, key, title=f"{key} — {model}"), key)
                 for key in ("val_acc", "train_loss")]
        shapes = []
        for act, runs in by_act.items():
            first = min(runs, key=lambda r: r["seed"])
            before = store.artifact(first["run_id"], "curves_before") or {}
            after = store.artifact(first["run_id"], "curves_after") or {}
            if before or after:
                fig = activation_shapes(before, after, title=f"{act} (seed {first['seed']})")
                shapes.append(figure_html(fig, act))
        body = "".join(parts) + "<h4>Activation shapes: dashed before, solid after training</h4>" + "".join(shapes)
        sections.append((f"{experiment}: {dataset}, {model}", body))
    return sections


# Every section of the page, in order: fn(store, rows) -> list of (title, html); empty where it has nothing to show.
SECTIONS: tuple[Section, ...] = (_curves_and_shapes, annealing_section, search_section)


def write_report(workdir: str | Path, title: str = "actlab report", sections: tuple[Section, ...] = SECTIONS) -> Path:
    """Write ``report.html`` (and the CSV tables, and every figure as a PNG in ``report_figures/``)
    into ``workdir``; return its path."""
    store = RunStore(workdir, create=False)
    rows, summary = export(store)
    with saving_pngs(store.workdir / "report_figures"):  # every figure also as a PNG beside the page
        parts = [part for section in sections for part in section(store, rows)]
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}img{max-width:49%}")
    body = "".join(f"<h2>{html.escape(t)}</h2>{b}" for t, b in parts)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>Work directory: {html.escape(str(store.workdir))}. Accuracy is mean ± std over the seeds listed."
            f"</p>{_table(summary, rows)}{body}</body></html>")
    path = store.workdir / "report.html"
    path.write_text(page)
    store.close()
    return path
