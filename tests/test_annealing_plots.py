"""Youden and curve plots: the artists drawn, the log scale, the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from actlab.plots import curves_plot, youden_from_results, youden_plot
from actlab.errors import ActlabError

POINTS = [
    {"label": 1, "group": "fixed0", "x": 0.02, "y": 0.05},
    {"label": 2, "group": "fixed0", "x": 0.03, "y": 0.04},
    {"label": 3, "group": "linear", "x": 0.01, "y": 0.03},
    {"label": 4, "group": "linear", "x": 0.015, "y": 0.035},
    {"label": 5, "group": "trainable", "x": 0.04, "y": 0.06},
]


def _markers(fig: Figure) -> np.ndarray:
    ax = fig.axes[0]
    return np.concatenate([c.get_offsets() for c in ax.collections if isinstance(c, PathCollection)])


def test_youden_plot_draws_one_numbered_marker_per_point_and_the_diagonal():
    fig = youden_plot(POINTS, "train error", "val error")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    np.testing.assert_allclose(
        sorted(map(tuple, _markers(fig))), sorted((p["x"], p["y"]) for p in POINTS)
    )
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "3", "4", "5"]
    (diag,) = [line for line in ax.lines if line.get_label() == "y = x"]
    xs, ys = diag.get_data()
    np.testing.assert_array_equal(xs, ys)
    assert min(xs) < 0.01 and max(xs) > 0.06  # spans the data
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == {"fixed0", "linear", "trainable", "y = x"}
    assert ax.get_xlabel() == "train error" and ax.get_xscale() == "linear"


def test_youden_groups_get_distinct_colours():
    ax = youden_plot(POINTS, "x", "y").axes[0]
    colours = [tuple(c.get_facecolor()[0]) for c in ax.collections if isinstance(c, PathCollection)]
    assert len(colours) == 3 == len(set(colours))


def test_youden_log_scale_on_both_axes_and_diagonal_positive():
    ax = youden_plot(POINTS, "x", "y", log=True).axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    (diag,) = [line for line in ax.lines if line.get_label() == "y = x"]
    assert min(diag.get_xdata()) > 0


def test_youden_log_scale_leaves_out_non_positive_points():
    points = POINTS + [{"label": 6, "group": "linear", "x": 0.0, "y": 0.02}]
    fig = youden_plot(points, "x", "y", log=True)
    assert len(_markers(fig)) == len(POINTS)
    assert "6" not in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ActlabError, match="no points to plot with positive x and y"):
        youden_plot(points[-1:], "x", "y", log=True)


def test_youden_draws_into_a_given_axes():
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert youden_plot(POINTS, "x", "y", ax=axes[1]) is fig
    assert not axes[0].collections and axes[1].collections


def test_youden_from_results_numbers_runs_and_skips_failed_ones():
    rows = [
        {"run_id": "a", "activation": "relu", "seed": 0, "final_train_error": 0.1, "final_val_error": 0.2},
        {"run_id": "b", "activation": "relu", "seed": 1, "final_train_error": math.nan, "final_val_error": 0.3},
        {"run_id": "c", "activation": "theta_relu", "seed": 0, "final_train_error": 0.05, "final_val_error": 0.1},
        {"run_id": "d", "activation": "theta_relu", "seed": 1, "final_val_error": 0.1},
    ]
    fig = youden_from_results(rows, "final_train_error", "final_val_error")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["1", "3"]
    assert len(_markers(fig)) == 2
    fig = youden_from_results(rows, "final_train_error", "final_val_error", label_key="run_id")
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["a", "c"]


def test_youden_from_results_names_a_missing_key():
    with pytest.raises(ActlabError, match="no run has 'final_val_eror'; keys are: final_train_error"):
        youden_from_results([{"final_train_error": 0.1}], "final_train_error", "final_val_eror")


def test_curves_plot_mean_and_band_over_seeds():
    histories = {
        "linear": [
            [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.7}],
            [{"epoch": 1, "val_acc": 0.7}, {"epoch": 2, "val_acc": 0.9}, {"epoch": 3, "val_acc": 0.95}],
        ],
        "fixed0": [[{"val_acc": 0.4}, {"val_acc": 0.6}]],
    }
    ax = curves_plot(histories, "val_acc").axes[0]
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["linear (n=2)"].get_ydata(), [0.6, 0.8])
    np.testing.assert_allclose(lines["fixed0 (n=1)"].get_xdata(), [1, 2])
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    verts = bands[0].get_paths()[0].vertices
    assert verts[:, 1].min() == pytest.approx(0.5) and verts[:, 1].max() == pytest.approx(0.9)
    assert ax.get_ylabel() == "val_acc"


def test_curves_plot_missing_key_is_a_clear_error():
    with pytest.raises(ActlabError, match="has no 'theta_deg'"):
        curves_plot({"linear": [[{"val_acc": 0.5}]]}, "theta_deg")
