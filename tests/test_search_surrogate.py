"""Surrogates on synthetic tables whose score is a smooth function of the features."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from actlab.errors import ActlabError, UnknownNameError
from actlab.search import (
    SURROGATES,
    combine_features,
    holdout_evaluation,
    make_surrogate,
    spearman,
    top_k_recall,
)

NO_UMAP = [n for n in SURROGATES.names() if n != "umap_knn"]  # umap_knn: tests/test_search_umap.py


def synthetic_table(n: int = 400, seed: int = 0):
    """Two feature blocks that are nonlinear images of a 2-D latent z; score = -|z - c|^2."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(-1, 1, size=(n, 2))
    basis = np.hstack([z, np.sin(3 * z), z**2])
    outputs = basis @ rng.normal(size=(6, 30)) + 0.01 * rng.normal(size=(n, 30))
    fisher = np.tanh(basis @ rng.normal(size=(6, 12)))
    score = -((z - [0.3, -0.2]) ** 2).sum(axis=1)
    return [outputs, fisher], score


@pytest.mark.parametrize("name", NO_UMAP)
def test_surrogate_ranks_held_out_functions(name):
    features, score = synthetic_table()
    idx = np.random.default_rng(1).permutation(len(score))[:200]
    result = holdout_evaluation(name, features, idx, score[idx], test_frac=0.25, k=10, seed=0)
    assert result["spearman"] > 0.8
    assert result["top_k_recall"] >= 0.5


@pytest.mark.parametrize("name", NO_UMAP)
def test_surrogate_cannot_rank_a_shuffled_target(name):
    features, score = synthetic_table()
    shuffled = np.random.default_rng(2).permutation(score)
    idx = np.arange(200)
    result = holdout_evaluation(name, features, idx, shuffled[idx], test_frac=0.25, seed=0)
    assert abs(result["spearman"]) < 0.35


@pytest.mark.parametrize("name", NO_UMAP)
def test_surrogate_is_deterministic_for_a_seed(name):
    features, score = synthetic_table(200)
    idx = np.arange(0, 200, 2)
    p1 = make_surrogate(name, seed=3).fit(features, idx, score[idx]).predict(np.arange(1, 200, 2))
    p2 = make_surrogate(name, seed=3).fit(features, idx, score[idx]).predict(np.arange(1, 200, 2))
    np.testing.assert_array_equal(p1, p2)


def test_embedding_is_reused_until_features_change():
    features, score = synthetic_table(100)
    model = make_surrogate("pca_knn")
    emb = model.embedding(features)
    assert model.embedding([f.copy() for f in features]) is emb
    assert model.embedding([features[0] + 1.0, features[1]]) is not emb


def test_knn_prediction_is_mean_of_three_nearest_scores():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [0.5]])
    model = make_surrogate("pca_knn", n_components=1).fit(x, [0, 1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(model.predict([5]), [2.0])


def test_combine_features_weighs_blocks_equally_and_clips_outliers():
    rng = np.random.default_rng(0)
    small, big = rng.normal(size=(500, 1)), rng.normal(size=(500, 100))
    big[0, :] = 1e30  # an overflowing function
    combined = combine_features([small, big])
    assert combined.shape == (500, 101)
    assert np.abs(combined).max() <= 10.0
    var_small, var_big = combined[1:, :1].var(axis=0).sum(), combined[1:, 1:].var(axis=0).sum()
    assert var_small == pytest.approx(var_big, rel=0.2)


def test_spearman_and_top_k_recall_closed_forms():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([5, 5, 5], [1, 2, 3]) == 0.0
    pred, true = np.array([0.9, 0.8, 0.1, 0.2]), np.array([1.0, 0.0, 0.5, 0.2])
    assert spearman(pred, true) == pytest.approx(spearmanr(pred, true).statistic)
    assert top_k_recall(pred, true, 2) == 0.5  # predicted {0, 1}, true {0, 2}
    assert top_k_recall(pred, true, 4) == 1.0


def test_unknown_surrogate_suggests_a_name():
    with pytest.raises(UnknownNameError, match="umap_knn"):
        make_surrogate("umap_kn")


def test_k_larger_than_evaluated_set_raises():
    features, score = synthetic_table(50)
    with pytest.raises(ActlabError, match="k=3"):
        make_surrogate("pca_knn").fit(features, [0, 1], score[:2])


@pytest.mark.parametrize("idx,scores", [([0, 1, 2], [1.0, 2.0]), ([0, 0, 1], [1.0, 2.0, 3.0]),
                                        ([0, 1, 99], [1.0, 2.0, 3.0]), ([0, 1, 2], [1.0, np.nan, 3.0])])
def test_bad_fit_inputs_raise(idx, scores):
    features, _ = synthetic_table(50)
    with pytest.raises(ActlabError):
        make_surrogate("pca_knn").fit(features, idx, scores)


def test_predict_before_fit_and_bad_parameters_raise():
    with pytest.raises(ActlabError, match="fit"):
        make_surrogate("pca_knn").predict([0])
    with pytest.raises(ActlabError, match="bad parameters"):
        make_surrogate("pca_knn", neighbours=5)
    with pytest.raises(ActlabError):
        top_k_recall([1.0], [1.0], 2)
