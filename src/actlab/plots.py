"""Figures of runs, pure: data in, figure out, nothing written.

Training curves (mean and band over seeds per epoch), activation shapes before
and after training, bar charts, and Youden plots: one metric of each run
against another (e.g. final training error against final validation error),
one numbered marker per run, coloured by group, with the line y = x: runs
above it generalise worse than they fit. Every function takes an optional
``ax`` and returns the figure; :func:`figure_html` embeds one in a page.
"""

from __future__ import annotations

import base64
import contextvars
import html
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actlab.errors import ActlabError

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not with actlab (~0.6 s)
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _axes(ax: Axes | None, figsize: tuple[float, float] = (5.5, 5.0)) -> Axes:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure

    # a bare Figure, not pyplot: no global state, no GUI backend; savefig renders with Agg
    return Figure(figsize=figsize).add_subplot()


# Where figure_html also saves each PNG (a folder), while a report is being written.
_png_folder: contextvars.ContextVar[list | None] = contextvars.ContextVar("png_folder", default=None)


@contextmanager
def saving_pngs(folder: str | Path) -> Iterator[list[Path]]:
    """Within the block, every :func:`figure_html` figure is also written to ``folder`` as a PNG
    (numbered, named after its alt text); yields the list of paths written."""
    folder, written = Path(folder), []
    token = _png_folder.set([folder, written])
    try:
        yield written
    finally:
        _png_folder.reset(token)


def figure_html(fig: Figure, alt: str = "") -> str:
    """The figure as an inline PNG ``<img>`` (and a file, inside :func:`saving_pngs`)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    sink = _png_folder.get()
    if sink is not None:
        folder, written = sink
        folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9._=-]+", "_", alt).strip("_")[:80] or "figure"
        path = folder / f"{len(written) + 1:03d}_{stem}.png"
        path.write_bytes(buf.getvalue())
        written.append(path)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def legend(ax: Axes, fontsize: float = 8) -> None:
    """A legend that never covers the data: inside when it has up to 4 entries, else outside right."""
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) > 4:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(fontsize=fontsize, loc="best")


def curves_plot(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
    key: str,
    ax: Axes | None = None,
    band: str = "minmax",
    log: bool = False,
    title: str | None = None,
) -> Figure:
    """``key`` over epochs per group: the mean over seeds with a band.

    ``histories`` maps a group (schedule) to its runs, one per seed, each a
    list of per-epoch records (dicts with ``key`` and optionally ``epoch``;
    without it, records count epochs 1, 2, ...). Runs of unequal length are
    cut to the shortest; values that are NaN (a diverged epoch) are left out of
    the mean and the band. ``band`` is ``minmax`` or ``std``.
    """
    if band not in ("minmax", "std"):
        raise ActlabError(f"curves plot: band must be 'minmax' or 'std', got {band!r}")
    ax = _axes(ax, (6.0, 4.0))
    for group, runs in histories.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        try:
            values = np.array([[float(rec[key]) for rec in r[:n]] for r in runs])
        except KeyError:
            raise ActlabError(f"curves plot: a run of {group!r} has no {key!r}") from None
        epochs = [float(rec.get("epoch", i + 1)) for i, rec in enumerate(runs[0][:n])]
        mean = np.nanmean(values, axis=0)
        if band == "std":
            lo, hi = mean - np.nanstd(values, axis=0), mean + np.nanstd(values, axis=0)
        else:
            lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        (line,) = ax.plot(epochs, mean, label=f"{group} (n={len(runs)})")
        ax.fill_between(epochs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel(key)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    legend(ax)
    return ax.figure


def activation_shapes(before: dict, after: dict, title: str = "", ax: Axes | None = None) -> Figure:
    """Each site's activation before (dashed) and after training (solid), with a per-channel band."""
    ax = _axes(ax, (6.0, 4.0))
    import matplotlib

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, site in enumerate(after or before):
        color = colors[i % len(colors)]
        if site in before:
            ax.plot(before[site]["x"], before[site]["mean"], "--", color=color, alpha=0.6, lw=1)
        if site in after:
            c = after[site]
            ax.plot(c["x"], c["mean"], color=color, label=site)
            if c["lo"] != c["hi"]:
                ax.fill_between(c["x"], c["lo"], c["hi"], color=color, alpha=0.2)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("x")
    ax.grid(alpha=0.3)
    legend(ax, fontsize=6)
    return ax.figure


def bar_chart(labels: list[str], means: list[float], stds: list[float], ylabel: str, title: str = "",
              ax: Axes | None = None) -> Figure:
    """Bars with ±std error bars, e.g. test accuracy per activation."""
    ax = _axes(ax, (max(6, 0.5 * len(labels)), 4))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    finite = [m - s for m, s in zip(means, stds) if m == m]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.05 * abs(min(finite))), None)
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def youden_plot(
    points: Sequence[Mapping[str, object]],
    xlabel: str,
    ylabel: str,
    log: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One numbered marker per point, coloured by group, and the y = x line.

    Each point is a dict with ``x``, ``y``, ``label`` (the run's number) and
    ``group`` (e.g. its schedule); ``run`` and ``schedule`` are accepted as
    the names of the last two. On a log scale, points with x or y <= 0 are
    left out.
    """
    if log:  # a log axis cannot show 0 (e.g. a run that fits its training set exactly)
        points = [p for p in points if float(p["x"]) > 0 and float(p["y"]) > 0]
    if not points:
        raise ActlabError("youden plot: no points to plot" + (" with positive x and y" if log else ""))
    ax = _axes(ax)
    groups: dict[str, list[Mapping[str, object]]] = {}
    for p in points:
        groups.setdefault(str(p.get("group", p.get("schedule", ""))), []).append(p)
    import matplotlib

    colours = matplotlib.colormaps["tab10" if len(groups) <= 10 else "tab20"]
    for i, (group, members) in enumerate(groups.items()):
        xs = [float(p["x"]) for p in members]
        ys = [float(p["y"]) for p in members]
        ax.scatter(xs, ys, s=140, color=colours(i % colours.N), alpha=0.35, label=group or None, zorder=2)
        for p, x, y in zip(members, xs, ys):
            label = p.get("label", p.get("run", ""))
            ax.annotate(str(label), (x, y), ha="center", va="center", fontsize=7, zorder=3)
    values = [float(p[k]) for p in points for k in ("x", "y")]
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    lo, hi = min(values), max(values)
    # pad the diagonal past the data, multiplicatively on a log scale
    lo, hi = (lo / 1.2, hi * 1.2) if log else (lo - 0.05 * (hi - lo or 1), hi + 0.05 * (hi - lo or 1))
    ax.plot([lo, hi], [lo, hi], color="0.4", linestyle="--", linewidth=1, label="y = x", zorder=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    legend(ax)
    return ax.figure


def youden_from_results(
    rows: Sequence[Mapping[str, object]],
    x_key: str,
    y_key: str,
    group_key: str = "activation",
    label_key: str | None = None,
    log: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """A Youden plot of result rows (one dict per run), for ``actlab plot youden``.

    Runs are numbered 1, 2, ... in row order unless ``label_key`` names a
    column. Rows whose metric is missing or not finite (failed runs) are left
    out; a key that no row has is an error, so a typo does not plot nothing.
    """
    for key in (x_key, y_key):
        if not any(key in row for row in rows):
            keys = sorted({k for row in rows for k in row})
            raise ActlabError(f"youden plot: no run has {key!r}; keys are: {', '.join(keys)}")
    points = []
    for i, row in enumerate(rows, start=1):
        x, y = row.get(x_key), row.get(y_key)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (x, y)):
            continue
        label = row.get(label_key, i) if label_key else i
        points.append({"x": x, "y": y, "label": label, "group": row.get(group_key, "")})
    return youden_plot(points, xlabel=x_key, ylabel=y_key, log=log, ax=ax)
