"""Plots of a search and its section of ``actlab report``.

The section shows the search curve (best validation accuracy against the
number of trainings), the 2-D UMAP embedding of every function's features
coloured by accuracy where it is known, the shapes of the best functions next
to relu, and their table.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING

import numpy as np
import torch

from actlab.errors import ActlabError
from actlab.plots import figure_html, legend
from actlab.search.features import evaluate_expressions
from actlab.search.loop import DIVERGED_SCORE, best_functions
from actlab.search.state import SearchState
from actlab.search.surrogate import make_surrogate
from actlab.store import RunStore

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not with actlab
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

EMBEDDING = "umap"  # or "pca": no numba compilation, for quick reports and tests


def _axes(ax: Axes | None, size: tuple[float, float] = (5, 3.5)) -> Axes:
    from matplotlib.figure import Figure  # here: import actlab must not load matplotlib

    return Figure(figsize=size).subplots() if ax is None else ax


def plot_search_curve(rows: list[dict], relu_acc: float | None = None, ax: Axes | None = None) -> Figure:
    """Every finished training's validation accuracy in the order they finished, and the best so far."""
    ax = _axes(ax)
    rows = sorted((r for r in rows if r["finished"] is not None), key=lambda r: r["finished"])
    acc = np.array([r["val_acc"] if r["status"] == "done" else DIVERGED_SCORE for r in rows if r["status"] != "failed"])
    sources = [r["source"] or "?" for r in rows if r["status"] != "failed"]
    steps = np.arange(1, len(acc) + 1)
    for source in dict.fromkeys(sources):
        mask = np.array([s == source for s in sources])
        ax.scatter(steps[mask], acc[mask], s=10, alpha=0.6, label=source)
    if len(acc):
        ax.plot(steps, np.maximum.accumulate(acc), color="black", label="best so far")
    if relu_acc is not None:
        ax.axhline(relu_acc, color="gray", linestyle="--", label="relu")
    ax.set_xlabel("trainings")
    ax.set_ylabel("validation accuracy")
    legend(ax)
    return ax.figure


def plot_embedding(xy: np.ndarray, scores: np.ndarray, ax: Axes | None = None, title: str = "") -> Figure:
    """Functions in a 2-D embedding: grey where not evaluated (``scores`` NaN), coloured by score elsewhere."""
    ax = _axes(ax, (5, 4))
    known = np.isfinite(scores)
    ax.scatter(xy[~known, 0], xy[~known, 1], s=3, color="lightgray", label="not evaluated")
    points = ax.scatter(xy[known, 0], xy[known, 1], s=12, c=scores[known], cmap="viridis")
    ax.figure.colorbar(points, ax=ax, label="validation accuracy")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def plot_shapes(names: list[str], labels: list[str] | None = None, ax: Axes | None = None,
                lim: float = 5.0) -> Figure:
    """The functions ``names`` on [-lim, lim] (values clipped to +-3*lim, so one blow-up keeps the scale)."""
    ax = _axes(ax)
    x = torch.linspace(-lim, lim, 401)
    ys = evaluate_expressions(names, x).clamp(-3 * lim, 3 * lim).numpy()
    for y, label in zip(ys, labels or names):
        ax.plot(x.numpy(), y, label=label, linestyle="--" if label.startswith("relu") else "-")
    ax.set_xlabel("x")
    legend(ax, fontsize=7)
    return ax.figure


def embedding(state: SearchState) -> tuple[np.ndarray, str]:
    """2-D UMAP (PCA without umap-learn) of all functions' features, cached in the state."""
    kinds = ["outputs"] if state.missing_fisher() else ["outputs", "fisher"]
    method = EMBEDDING
    try:
        import umap  # noqa: F401
    except ImportError:
        method = "pca"
    key = f"{method}:{'+'.join(kinds)}"
    row = state.db.execute("SELECT value FROM search_meta WHERE key='embedding'").fetchone()
    cached = json.loads(row["value"]) if row else {}
    if cached.get("key") != key:
        surrogate = make_surrogate("umap_knn") if method == "umap" else make_surrogate("pca_knn", n_components=2)
        xy = surrogate.embedding([state.features(k) for k in kinds])
        cached = {"key": key, "xy": xy.tolist()}
        with state.transaction() as db:
            db.execute("INSERT OR REPLACE INTO search_meta(key, value) VALUES('embedding', ?)", (json.dumps(cached),))
    return np.asarray(cached["xy"]), f"{method.upper()} of {' + '.join(kinds)} features"


def _table(rows: list[dict], relu: dict | None) -> str:
    head = "<tr><th>#</th><th>function</th><th>val acc</th><th>test acc</th><th>val − relu</th></tr>"
    body = [head]
    for i, r in enumerate(rows, 1):
        delta = f"{r['val_acc'] - relu['val_acc']:+.4f}" if relu else "—"
        body.append(f"<tr><td>{i}</td><td>{html.escape(r['rep'])}</td><td>{r['val_acc']:.4f}</td>"
                    f"<td>{r['test_acc']:.4f}</td><td>{delta}</td></tr>")
    if relu:
        body.append(f"<tr><td>relu</td><td>{html.escape(relu['rep'])}</td><td>{relu['val_acc']:.4f}</td>"
                    f"<td>{relu['test_acc']:.4f}</td><td>0</td></tr>")
    return "<table>" + "".join(body) + "</table>"


def search_section(store: RunStore, rows: list[dict]) -> list[tuple[str, str]]:
    """The report section of a search work directory; nothing when the store holds no search."""
    if not store.db.execute("SELECT 1 FROM sqlite_master WHERE name='search_meta'").fetchone():
        return []
    try:
        state = SearchState(store.workdir)
    except ActlabError:
        return []
    try:
        figures = search_figures(state)
        if not figures:
            return [("Activation search", "<p>No function trained yet.</p>")]
        top, relu = best_functions(store.workdir, 10)
        parts = [figure_html(fig, name.replace("_", " ")) for name, fig in figures.items()]
        counts = ", ".join(f"{k} {v}" for k, v in state.counts().items() if k != "queued")
        body = f"<p>{counts}. Settings: {html.escape(state.settings.model_dump_json())}</p>" + "".join(parts)
        return [("Activation search", body + "<h4>Best functions</h4>" + _table(top, relu))]
    finally:
        state.close()


def search_figures(state: SearchState) -> dict[str, Figure]:
    """The search curve, the embedding coloured by accuracy and the best shapes; empty before any training."""
    finished = [r for r in state.rows() if r["finished"] is not None]
    if not finished:
        return {}
    top, relu = best_functions(state.workdir, 10)
    figures = {"search_curve": plot_search_curve(finished, relu["val_acc"] if relu else None)}
    xy, title = embedding(state)
    scores = np.full(len(xy), np.nan)
    for r in finished:
        if r["status"] != "failed":
            scores[r["idx"]] = r["val_acc"] if r["status"] == "done" else DIVERGED_SCORE
    figures["embedding"] = plot_embedding(xy, scores, title=title)
    shown = [r["rep"] for r in top[:6]] + ([relu["rep"]] if relu else [])
    labels = [r["rep"] for r in top[:6]] + ([f"relu = {relu['rep']}"] if relu else [])
    figures["best_shapes"] = plot_shapes(shown, labels)
    return figures

