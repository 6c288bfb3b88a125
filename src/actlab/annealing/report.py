"""Annealing runs in a run store: their section of the HTML report.

A run is an annealing run when its activation spec uses ``theta_relu`` or
``anneal``. Their diagnostics are logged per activation site
(``act/<site>/theta_deg``, ``act/<site>/t``); the curves here show their
mean over the sites of a network, under the keys ``theta_deg`` and ``t``.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING


from actlab.errors import ActlabError
from actlab.plots import curves_plot, figure_html, youden_from_results
from actlab.store import RunStore

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not with actlab
    from matplotlib.figure import Figure

_ANNEALING = re.compile(r"\b(theta_relu|anneal)\b")
SITE_MEANS = ("theta_deg", "t")
_QUARTER_PI = "0.7853981633974483"  # how pi/4 reads in a canonical spec


def is_annealing(spec: str) -> bool:
    return bool(_ANNEALING.search(spec))


def short_label(spec: str) -> str:
    """A spec as a legend label: pi/4 written as such."""
    return spec.replace(_QUARTER_PI, "pi/4")


def with_site_means(history: Sequence[Mapping[str, float]]) -> list[dict]:
    """Per-epoch records with ``theta_deg`` and ``t`` added: their mean over sites, where logged."""
    out = []
    for record in history:
        record = dict(record)
        for name in SITE_MEANS:
            values = [v for k, v in record.items() if k.startswith("act/") and k.endswith(f"/{name}")]
            if values:
                record[name] = statistics.fmean(values)
        out.append(record)
    return out


def curves_figure(histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], title: str = "") -> Figure:
    """Validation accuracy, and theta / t where some group logs them, side by side.

    ``histories`` maps a group to its runs' per-epoch records, already passed
    through :func:`with_site_means`.
    """
    keys = ["val_acc"] + [k for k in SITE_MEANS if any(k in rec for runs in histories.values()
                                                           for run in runs for rec in run)]
    from matplotlib.figure import Figure  # here: import actlab must not load matplotlib

    fig = Figure(figsize=(5.5 * len(keys), 4.2))
    for i, key in enumerate(keys):
        having = {g: runs for g, runs in histories.items() if runs and all(run and key in run[0] for run in runs)}
        curves_plot(having, key, ax=fig.add_subplot(1, len(keys), i + 1))
    axes = fig.axes
    axes[0].set_title(title)
    for ax in axes[1:]:
        ax.set_title("mean over activation sites")
    fig.tight_layout()
    return fig


def grouped(rows: list[dict], group: str) -> list[dict]:
    """Rows with ``_group``: the values of the comma-separated keys in ``group``."""
    keys = [k.strip() for k in group.split(",") if k.strip()]
    columns = {k for r in rows for k in r}
    for key in keys or [group]:
        if key not in columns:
            raise ActlabError(f"unknown group key {key!r}; keys are: {', '.join(sorted(columns))}")
    return [r | {"_group": " / ".join(short_label(str(r[k])) for k in keys)} for r in rows]


def annealing_section(store: RunStore, rows: list[dict]) -> list[tuple[str, str]]:
    """Per (experiment, dataset, model) with annealing runs: a Youden plot and curves of accuracy and theta / t."""
    settings: dict[tuple, list[dict]] = {}
    for row in rows:
        settings.setdefault((row["experiment"], row["dataset"], row["model"]), []).append(row)
    sections = []
    for (experiment, dataset, model), members in settings.items():
        if not any(is_annealing(r["activation"]) for r in members):
            continue
        members = grouped(members, "activation")
        parts = []
        if any(r.get("final_val_error") is not None for r in members):
            fig = youden_from_results(members, "final_train_error", "final_val_error", group_key="_group")
            fig.axes[0].set_title(f"{model}: numbered in run order")
            parts.append(figure_html(fig, "Youden plot"))
        histories: dict[str, list[list[dict]]] = {}
        for row in members:
            histories.setdefault(row["_group"], []).append(with_site_means(store.history(row["run_id"])))
        if any(run for runs in histories.values() for run in runs):
            parts.append(figure_html(curves_figure(histories, f"{model}: mean and range over seeds"), "curves"))
        note = ("<p>Youden plot: final training error against final validation error, one numbered marker "
                "per run; runs above the dashed line y = x generalise worse than they fit.</p>")
        sections.append((f"Annealing — {experiment}: {dataset}, {model}", note + "".join(parts)))
    return sections

