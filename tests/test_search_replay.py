"""Replayed searches on synthetic benchmark tables."""

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from test_search_surrogate import synthetic_table

from actlab.errors import ActlabError
from actlab.search import (
    BASELINES,
    baseline_indices,
    best_so_far,
    enumerate_space,
    evals_to_reach,
    make_surrogate,
    plot_replay,
    random_order,
    replay,
    surrogate_order,
    top_threshold,
)

START = [3, 17, 42, 99, 123, 250, 301, 444]


@pytest.fixture(scope="module")
def result():
    features, score = synthetic_table(500, seed=4)
    return replay(features, score, START, budget=120, seeds=range(6), surrogate="pca_knn")


def test_surrogate_search_reaches_the_top_percent_sooner_than_random(result):
    # Random search needs about (492 + 1) / (5 + 1) ~ 82 evaluations after the
    # baselines to hit one of the 5 best of 500; the surrogate follows the smooth score.
    assert np.isfinite(result.surrogate.evals_to_top).all()
    surrogate, random = result.surrogate.summary(), result.random.summary()
    assert surrogate["mean_evals_to_top"] < 0.6 * random["mean_evals_to_top"]
    assert result.surrogate.mean[40] > result.random.mean[40]


def test_curves_have_one_row_per_seed_start_with_baselines_and_never_decrease(result):
    _, score = synthetic_table(500, seed=4)
    for curves in (result.surrogate, result.random):
        assert curves.best.shape == (6, 120) and curves.mean.shape == curves.std.shape == (120,)
        assert (np.diff(curves.best, axis=1) >= 0).all()
        np.testing.assert_array_equal(curves.best[:, 7], score[START].max())
    assert result.threshold == np.sort(score)[-5]


def test_surrogate_order_is_deterministic_and_starts_with_baselines():
    features, score = synthetic_table(200)
    a = surrogate_order(features, score, START[:4], 30, surrogate="pca_knn", seed=1)
    b = surrogate_order(features, score, START[:4], 30, surrogate="pca_knn", seed=1)
    np.testing.assert_array_equal(a, b)
    assert list(a[:4]) == START[:4] and len(set(a.tolist())) == 30


def test_greedy_step_picks_the_best_predicted_function():
    features, score = synthetic_table(200)
    order = surrogate_order(features, score, START[:4], 5, surrogate="pca_knn", seed=0)
    model = make_surrogate("pca_knn", seed=0).fit(features, START[:4], score[START[:4]])
    rest = np.setdiff1d(np.arange(200), START[:4])
    pred = model.predict(rest)
    assert order[4] in rest[pred == pred.max()]


def test_random_order_is_a_permutation_after_the_start():
    order = random_order(10, [4, 2], seed=0)
    assert list(order[:2]) == [4, 2] and sorted(order.tolist()) == list(range(10))


def test_threshold_and_evals_to_reach_closed_forms():
    score = np.arange(200.0)
    assert top_threshold(score, 0.01) == 198.0  # the 2 best of 200
    assert evals_to_reach(score, np.array([5, 199, 0]), 198.0) == 2.0
    assert math.isinf(evals_to_reach(score, np.array([5, 6]), 198.0))
    np.testing.assert_array_equal(best_so_far(score, np.array([3, 1, 7])), [3, 3, 7])


def test_plot_returns_a_figure_with_both_strategies(result):
    fig = plot_replay(result)
    assert isinstance(fig, Figure)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels == ["surrogate search", "random search", "top 1%"]
    ax = Figure().subplots()
    assert plot_replay(result, ax=ax) is ax.figure


def test_baselines_are_found_in_the_default_space():
    space = enumerate_space()
    rows = baseline_indices(space)
    assert len(set(rows)) == len(BASELINES) == 8
    torch.testing.assert_close(space.outputs[rows[1]], space.inputs.clamp(min=0))  # relu


@pytest.mark.parametrize("kwargs", [{"start": [0, 0]}, {"start": [999]}, {"budget": 2}, {"epsilon": 1.5},
                                    {"scores": [np.nan] * 50}, {"seeds": []}, {"surrogate": "nope"}])
def test_bad_replay_arguments_raise(kwargs):
    features, score = synthetic_table(50)
    args = {"start": [0, 1, 2, 3], "scores": score, "budget": 10, "seeds": [0], "surrogate": "pca_knn"}
    args |= kwargs
    with pytest.raises(ActlabError):
        replay(features, args.pop("scores"), args.pop("start"), **args)
