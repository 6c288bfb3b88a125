"""Surrogates that predict a function's score from its features.

The paper's surrogate (Bingham & Miikkulainen, NeurIPS 2023,
https://arxiv.org/abs/2301.05785) embeds the features of *all* candidate
functions, evaluated or not, with UMAP, and regresses the scores of the
evaluated ones with k-nearest neighbours (k=3) in that embedding. ``pca_knn``
and ``pca_gp`` do the same without umap-learn, on a PCA embedding.

Features are given as one array or as a list of blocks (output features,
Fisher features). Each column is centred on its median, scaled by its robust
spread and clipped to +-10, so that functions whose outputs reach 1e30 (e.g.
``cosh(cosh(x))``) cannot dominate the geometry; each block is then scaled so
that blocks weigh equally whatever their number of columns, and the blocks are
concatenated. (The paper combines the two feature sets inside UMAP; plain
concatenation keeps one embedding per fit and works for every surrogate.)

The embedding is transductive and seeded, so it is computed once per feature
table and reused while only the evaluated set grows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from actlab._registry import Registry
from actlab.errors import ActlabError

FeatureInput = np.ndarray | Sequence[np.ndarray]
_CLIP = 10.0


def _robust_scale(block: np.ndarray) -> np.ndarray:
    x = np.asarray(block, dtype=np.float64)
    if x.ndim != 2:
        raise ActlabError(f"features must be 2-D (functions, features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ActlabError("features contain non-finite values")
    center = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    spread = (q75 - q25) / 1.349  # the IQR of a standard normal is 1.349
    spread = np.where(spread > 0, spread, x.std(axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    return np.clip((x - center) / spread, -_CLIP, _CLIP)


def combine_features(features: FeatureInput) -> np.ndarray:
    """One scaled feature matrix from an array or a list of blocks (see the module docstring)."""
    blocks = [features] if isinstance(features, np.ndarray) else list(features)
    if not blocks or len({len(b) for b in blocks}) != 1:
        rows = [len(b) for b in blocks]
        raise ActlabError(f"feature blocks must be non-empty with equal row counts, got {rows}")
    scaled = [_robust_scale(b) for b in blocks]
    return np.hstack([s / np.sqrt(s.shape[1]) for s in scaled])


class Surrogate:
    """Embed all functions once, then regress scores of the evaluated ones.

    ``fit(features_all, evaluated_idx, scores)`` then ``predict(idx)``.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._features: list[np.ndarray] | None = None
        self._embedding: np.ndarray | None = None
        self._model = None

    def _embed(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _regressor(self, num_evaluated: int):
        raise NotImplementedError

    def embedding(self, features_all: FeatureInput) -> np.ndarray:
        """The embedding of all functions; recomputed only when the features change."""
        blocks = [features_all] if isinstance(features_all, np.ndarray) else list(features_all)
        cached = self._features
        if cached is None or len(cached) != len(blocks) or not all(map(np.array_equal, cached, blocks)):
            self._embedding = self._embed(combine_features(blocks))
            self._features = [np.array(b, copy=True) for b in blocks]
        return self._embedding

    def use_embedding(self, features_all: FeatureInput, embedding: np.ndarray) -> None:
        """Adopt an embedding computed earlier for these features (a resumed search skips the fit)."""
        blocks = [features_all] if isinstance(features_all, np.ndarray) else list(features_all)
        self._features, self._embedding = [np.array(b, copy=True) for b in blocks], np.asarray(embedding)

    def fit(self, features_all: FeatureInput, evaluated_idx: Sequence[int],
            scores: Sequence[float]) -> Surrogate:
        emb = self.embedding(features_all)
        idx = np.asarray(evaluated_idx, dtype=np.int64)
        y = np.asarray(scores, dtype=np.float64)
        if idx.ndim != 1 or len(idx) != len(y):
            raise ActlabError(f"got {len(idx)} evaluated indices but {len(y)} scores")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(emb)):
            raise ActlabError(f"evaluated indices must lie in [0, {len(emb)}), got {idx.min()}..{idx.max()}")
        if len(np.unique(idx)) != len(idx) or not np.isfinite(y).all():
            raise ActlabError("evaluated indices must be distinct and their scores finite")
        with warnings.catch_warnings():
            # a GP hyper-parameter at its bound is expected (e.g. no noise in a table)
            from sklearn.exceptions import ConvergenceWarning  # sklearn loads on first use, not with actlab

            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model = self._regressor(len(idx)).fit(emb[idx], y)
        return self

    def predict(self, idx: Sequence[int]) -> np.ndarray:
        if self._model is None or self._embedding is None:
            raise ActlabError("fit the surrogate before predicting")
        return self._model.predict(self._embedding[np.asarray(idx, dtype=np.int64)])


class _KNNMixin:
    k: int

    def _regressor(self, num_evaluated: int) -> KNeighborsRegressor:
        if self.k > num_evaluated:
            raise ActlabError(
                f"k={self.k} neighbours need at least {self.k} evaluated functions, got {num_evaluated}")
        from sklearn.neighbors import KNeighborsRegressor

        return KNeighborsRegressor(n_neighbors=self.k)


def _pca(x: np.ndarray, n_components: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n = min(n_components, *x.shape)
    return PCA(n_components=n, svd_solver="full", random_state=seed).fit_transform(x)


class UMAPKNN(_KNNMixin, Surrogate):
    """The paper's surrogate: UMAP of all functions' features, then k-NN regression (k=3)."""

    def __init__(self, k: int = 3, n_components: int = 2, n_neighbors: int = 15, min_dist: float = 0.1,
                 seed: int = 0) -> None:
        super().__init__(seed)
        self.k, self.n_components, self.n_neighbors, self.min_dist = k, n_components, n_neighbors, min_dist

    def _embed(self, x: np.ndarray) -> np.ndarray:
        try:
            import umap
        except ImportError:
            msg = "the umap_knn surrogate needs umap-learn: pip install 'actlab[search]'"
            raise ActlabError(msg) from None
        reducer = umap.UMAP(n_components=self.n_components, n_neighbors=min(self.n_neighbors, len(x) - 1),
                            min_dist=self.min_dist, random_state=self.seed, n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap warns that random_state forces n_jobs=1
            return reducer.fit_transform(x)


class PCAKNN(_KNNMixin, Surrogate):
    """k-NN regression (k=3) on a PCA embedding of the scaled features; needs no umap."""

    def __init__(self, k: int = 3, n_components: int = 8, seed: int = 0) -> None:
        super().__init__(seed)
        self.k, self.n_components = k, n_components

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return _pca(x, self.n_components, self.seed)


class PCAGP(Surrogate):
    """Gaussian-process regression (isotropic RBF + noise, fitted hyper-parameters) on a PCA embedding.

    One length scale rather than one per component: fitting 8 of them by
    marginal likelihood costs seconds per fit, too slow inside a search loop.
    """

    def __init__(self, n_components: int = 8, restarts: int = 0, seed: int = 0) -> None:
        super().__init__(seed)
        self.n_components, self.restarts = n_components, restarts

    def _embed(self, x: np.ndarray) -> np.ndarray:
        emb = _pca(x, self.n_components, self.seed)
        return emb / max(emb.std(), 1e-12)  # one scale, so the RBF length-scale prior fits

    def _regressor(self, num_evaluated: int) -> GaussianProcessRegressor:
        if num_evaluated < 2:
            raise ActlabError(f"the GP surrogate needs at least 2 evaluated functions, got {num_evaluated}")
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel() * RBF(1.0) + WhiteKernel(1e-2)
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                        random_state=self.seed)


SURROGATES: Registry[Callable[..., Surrogate]] = Registry("surrogate")
SURROGATES.add("umap_knn", UMAPKNN)
SURROGATES.add("pca_knn", PCAKNN)
SURROGATES.add("pca_gp", PCAGP)


def make_surrogate(name: str, **kwargs: object) -> Surrogate:
    """A surrogate by registered name, e.g. ``make_surrogate("umap_knn", seed=1)``."""
    factory = SURROGATES.get(name)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ActlabError(f"bad parameters for surrogate {name}: {exc}") from None


def spearman(pred: Sequence[float], true: Sequence[float]) -> float:
    """Spearman rank correlation (scipy); 0 when either side is constant (no ranking at all)."""
    if np.ptp(np.asarray(pred, dtype=float)) == 0 or np.ptp(np.asarray(true, dtype=float)) == 0:
        return 0.0
    from scipy.stats import spearmanr  # here: scipy.stats costs ~0.4 s at import

    return float(spearmanr(pred, true).statistic)


def top_k_recall(pred: Sequence[float], true: Sequence[float], k: int) -> float:
    """Fraction of the k truly best functions that are among the k best predicted."""
    pred, true = np.asarray(pred), np.asarray(true)
    if not 1 <= k <= len(true):
        raise ActlabError(f"k must lie in [1, {len(true)}], got {k}")
    best_pred = set(np.argsort(-pred, kind="stable")[:k].tolist())
    best_true = set(np.argsort(-true, kind="stable")[:k].tolist())
    return len(best_pred & best_true) / k


def holdout_evaluation(surrogate: Surrogate | str, features_all: FeatureInput, evaluated_idx: Sequence[int],
                       scores: Sequence[float], *, test_frac: float = 0.2, k: int = 10, seed: int = 0
                       ) -> dict[str, float]:
    """Fit on a random part of the evaluated functions; Spearman and top-k recall on the rest."""
    model = make_surrogate(surrogate, seed=seed) if isinstance(surrogate, str) else surrogate
    idx, y = np.asarray(evaluated_idx), np.asarray(scores, dtype=np.float64)
    perm = np.random.default_rng(seed).permutation(len(idx))
    num_test = int(round(test_frac * len(idx)))
    if not 1 <= num_test < len(idx):
        raise ActlabError(f"test_frac={test_frac} leaves no test or no training functions out of {len(idx)}")
    test, train = perm[:num_test], perm[num_test:]
    pred = model.fit(features_all, idx[train], y[train]).predict(idx[test])
    return {"spearman": spearman(pred, y[test]), "top_k_recall": top_k_recall(pred, y[test], k)}
