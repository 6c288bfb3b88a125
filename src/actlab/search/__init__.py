"""Surrogate-guided activation-function search (Bingham & Miikkulainen, NeurIPS 2023).

The pure core: the search space and its deduplication, features (outputs and
K-FAC Fisher spectra), surrogates, and replays of searches on benchmark tables.
On top of it: the search state in SQLite, its workers (local processes or Ray)
and the search loop. ``actlab.search.report`` adds the search section to
``actlab report`` when imported (the CLI imports it).
"""

from actlab.search.benchmark import ACTBENCH_SETTINGS, Benchmark, load_benchmark
from actlab.search.features import Features, build_features, evaluate_expressions, output_features
from actlab.search.fisher import KFACFactors, fisher_features, kfac_factors, kfac_log_spectrum, spectrum_cdf
from actlab.search.loop import STRATEGIES, best_functions, init_search, run_search
from actlab.search.replay import (
    BASELINES,
    Curves,
    ReplayResult,
    baseline_indices,
    best_so_far,
    evals_to_reach,
    plot_replay,
    random_order,
    replay,
    surrogate_order,
    top_threshold,
)
from actlab.search.space import DEFAULT_SCHEMAS, SCHEMAS, SearchSpace, enumerate_space, probe_inputs
from actlab.search.state import Outcome, SearchSettings, SearchState
from actlab.search.surrogate import (
    SURROGATES,
    Surrogate,
    combine_features,
    holdout_evaluation,
    make_surrogate,
    spearman,
    top_k_recall,
)
from actlab.search.workers import compute_features, train_function, work

__all__ = [
    "ACTBENCH_SETTINGS",
    "BASELINES",
    "Benchmark",
    "DEFAULT_SCHEMAS",
    "SCHEMAS",
    "STRATEGIES",
    "SURROGATES",
    "Curves",
    "Features",
    "KFACFactors",
    "Outcome",
    "ReplayResult",
    "SearchSettings",
    "SearchSpace",
    "SearchState",
    "Surrogate",
    "baseline_indices",
    "best_functions",
    "best_so_far",
    "build_features",
    "combine_features",
    "compute_features",
    "enumerate_space",
    "evals_to_reach",
    "evaluate_expressions",
    "fisher_features",
    "holdout_evaluation",
    "init_search",
    "kfac_factors",
    "kfac_log_spectrum",
    "load_benchmark",
    "make_surrogate",
    "output_features",
    "plot_replay",
    "probe_inputs",
    "random_order",
    "replay",
    "run_search",
    "spearman",
    "spectrum_cdf",
    "surrogate_order",
    "top_k_recall",
    "top_threshold",
    "train_function",
    "work",
]
