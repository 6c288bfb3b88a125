"""Annealing runs in a run store: the ``actlab plot`` figures and the report section.

A run is an annealing run when its activation spec uses ``theta_relu`` or
``anneal``. Their diagnostics are logged per activation site
(``act/<site>/theta_deg``, ``act/<site>/t``); the curves here show their
mean over the sites of a network, under the keys ``theta_deg`` and ``t``.

Importing this module adds the annealing section to the HTML report
(``actlab.experiments.report.SECTIONS``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from actlab.annealing.plots import curves_plot, youden_from_results
from actlab.errors import ActlabError
from actlab.experiments.report import SECTIONS, figure_html
from actlab.experiments.results import run_rows
from actlab.store import RunStore

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


def _describe_keys(keys: set[str]) -> str:
    """Record keys for an error message, the per-site and per-parameter ones summarised."""
    per_site = sorted(k for k in keys if k.startswith(("act/", "param/")))
    plain = ", ".join(sorted(set(keys) - set(per_site)))
    if not per_site:
        return plain
    return f"{plain}; and {len(per_site)} per-site keys such as {', '.join(per_site[:3])}"


def _open(workdir: str | Path, experiment: str | None) -> tuple[RunStore, list[dict]]:
    store = RunStore(workdir, create=False)
    rows = run_rows(store)
    if experiment is not None:
        names = sorted({r["experiment"] for r in rows})
        rows = [r for r in rows if r["experiment"] == experiment]
        if not rows:
            store.close()
            raise ActlabError(f"no runs of experiment {experiment!r} in {workdir}; experiments: {', '.join(names)}")
    if not rows:
        store.close()
        raise ActlabError(f"no runs in {workdir}")
    return store, rows


def _grouped(rows: list[dict], group: str) -> list[dict]:
    """Rows with ``_group``: the values of the comma-separated keys in ``group``."""
    keys = [k.strip() for k in group.split(",") if k.strip()]
    columns = {k for r in rows for k in r}
    for key in keys or [group]:
        if key not in columns:
            raise ActlabError(f"unknown group key {key!r}; keys are: {', '.join(sorted(columns))}")
    return [r | {"_group": " / ".join(short_label(str(r[k])) for k in keys)} for r in rows]


def plot_youden(workdir: str | Path, x: str = "final_train_error", y: str = "final_val_error", log: bool = False,
                group: str = "activation", out: str | Path | None = None, experiment: str | None = None) -> Path:
    """Write a Youden plot of ``y`` against ``x`` over the runs of a work directory; return its path.

    ``x`` and ``y`` are columns of :func:`actlab.experiments.results.run_rows`;
    markers are numbered in run order and coloured by ``group``.
    """
    store, rows = _open(workdir, experiment)
    store.close()
    for key in (x, y):
        if not any(key in row for row in rows):
            raise ActlabError(f"unknown metric {key!r}; keys are: {', '.join(sorted({k for r in rows for k in r}))}")
    rows = _grouped(rows, group)
    fig = youden_from_results(rows, x, y, group_key="_group", log=log)
    fig.axes[0].set_title(f"{Path(workdir).name}" + (f": {experiment}" if experiment else ""))
    path = Path(out) if out else Path(workdir) / "youden.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_curves(workdir: str | Path, key: str = "val_acc", group: str = "activation",
                out: str | Path | None = None, experiment: str | None = None, band: str = "minmax") -> Path:
    """Write ``key`` over epochs (mean and band over seeds per group); return the PNG's path.

    ``key`` is any per-epoch record key, or ``theta_deg`` / ``t`` for the
    mean over activation sites. Groups whose runs lack ``key`` are left out.
    """
    store, rows = _open(workdir, experiment)
    rows = _grouped(rows, group)
    histories: dict[str, list[list[dict]]] = {}
    for row in rows:
        histories.setdefault(row["_group"], []).append(with_site_means(store.history(row["run_id"])))
    store.close()
    having = {g: runs for g, runs in histories.items() if all(run and key in run[0] for run in runs)}
    if not having:
        available = {k for runs in histories.values() for run in runs for rec in run for k in rec}
        raise ActlabError(f"no run logged {key!r}; keys are: {_describe_keys(available)}")
    fig = curves_plot(having, key, band=band)
    fig.axes[0].set_title(f"{Path(workdir).name}" + (f": {experiment}" if experiment else ""))
    path = Path(out) if out else Path(workdir) / f"curves_{key.replace('/', '_')}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def annealing_section(store: RunStore, rows: list[dict]) -> list[tuple[str, str]]:
    """Per (experiment, dataset, model) with annealing runs: a Youden plot and curves of accuracy and theta / t."""
    settings: dict[tuple, list[dict]] = {}
    for row in rows:
        settings.setdefault((row["experiment"], row["dataset"], row["model"]), []).append(row)
    sections = []
    for (experiment, dataset, model), members in settings.items():
        if not any(is_annealing(r["activation"]) for r in members):
            continue
        members = _grouped(members, "activation")
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


if annealing_section not in SECTIONS:
    SECTIONS.append(annealing_section)
