"""Plots of runs: training curves and activation shapes. Pure: data in, figure out."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display anywhere actlab runs; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _axes(ax: Axes | None, size: tuple[float, float] = (6, 4)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=size)
    return fig, ax


def training_curves(histories: dict[str, list[list[dict]]], key: str = "val_acc", ax: Axes | None = None,
                    title: str | None = None) -> Figure:
    """Mean (line) and min-max band over seeds of ``key`` per epoch, one line per label."""
    fig, ax = _axes(ax)
    for label, runs in histories.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        n = min(len(r) for r in runs)
        values = np.array([[rec.get(key, np.nan) for rec in r[:n]] for r in runs], dtype=float)
        epochs = np.arange(1, n + 1)
        (line,) = ax.plot(epochs, np.nanmean(values, 0), marker="o", ms=3, label=label)
        if len(runs) > 1:
            ax.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.set_title(title or key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def activation_shapes(before: dict, after: dict, title: str = "", ax: Axes | None = None) -> Figure:
    """Each site's activation before (dashed) and after training (solid), with a per-channel band."""
    fig, ax = _axes(ax)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
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
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    return fig


def bar_chart(labels: list[str], means: list[float], stds: list[float], ylabel: str, title: str = "",
              ax: Axes | None = None) -> Figure:
    """Bars with ±std error bars, e.g. test accuracy per activation."""
    fig, ax = _axes(ax, (max(6, 0.5 * len(labels)), 4))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    finite = [m - s for m, s in zip(means, stds) if m == m]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.05 * abs(min(finite))), None)
    ax.set_title(title)
    fig.tight_layout()
    return fig
