"""The paper's UMAP + k-NN surrogate (slow to import: numba compiles UMAP on first use)."""

import numpy as np
import pytest

from actlab.search import holdout_evaluation, make_surrogate

pytest.importorskip("umap")

from test_search_surrogate import synthetic_table  # noqa: E402


def test_umap_knn_ranks_held_out_functions_deterministically():
    features, score = synthetic_table(300)
    idx = np.random.default_rng(1).permutation(len(score))[:150]
    result = holdout_evaluation("umap_knn", features, idx, score[idx], test_frac=0.25, k=10, seed=0)
    assert result["spearman"] > 0.7
    model = make_surrogate("umap_knn", seed=0)
    again = holdout_evaluation(model, features, idx, score[idx], test_frac=0.25, k=10, seed=0)
    assert again == result
    assert model.embedding(features).shape == (300, 2)  # fitted on all functions, not only evaluated ones
