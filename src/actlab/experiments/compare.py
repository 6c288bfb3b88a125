"""Does an activation beat the baseline over the same epochs? Differences with intervals and p-values.

For every (experiment, dataset, model), each activation's metric is compared
with the baseline's (``relu`` by default) over seeds: paired by seed where at
least two seeds match (paired t-test, and a bootstrap interval of the mean
difference), else as two independent samples (Welch's t-test). The p-values of
the activations compared with one baseline are corrected for multiplicity
with Holm's step-down method. With fewer than two seeds nothing is tested,
and the verdict says so instead of reporting a spread of zero.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from actlab.errors import ActlabError

KEYS = ("experiment", "dataset", "model")
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """One activation against the baseline on one configuration; ``diff`` = activation − baseline."""

    experiment: str
    dataset: str
    model: str
    activation: str
    baseline: str
    metric: str
    test: str  # "paired t", "Welch t" or "none"
    n: int  # seed pairs (paired) or the smaller group's size
    activation_mean: float
    baseline_mean: float
    diff: float
    ci_low: float
    ci_high: float
    boot_low: float
    boot_high: float
    p: float
    p_holm: float
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def higher_is_better(metric: str) -> bool:
    return not any(word in metric for word in ("loss", "error", "time"))


def _paired(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, boots: int) -> tuple:
    from scipy import stats  # here: scipy.stats costs ~0.4 s at import

    d = a - b
    n, mean = len(d), float(d.mean())
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    p = float(stats.ttest_rel(a, b).pvalue) if sd > 0 else math.nan
    draws = d[rng.integers(0, n, size=(boots, n))].mean(axis=1)
    return mean, mean - half, mean + half, *np.percentile(draws, [2.5, 97.5]), p


def _welch(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, boots: int) -> tuple:
    from scipy import stats

    mean = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return mean, mean, mean, mean, mean, math.nan
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df) * se)
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    draws = (a[rng.integers(0, len(a), size=(boots, len(a)))].mean(axis=1)
             - b[rng.integers(0, len(b), size=(boots, len(b)))].mean(axis=1))
    return mean, mean - half, mean + half, *np.percentile(draws, [2.5, 97.5]), p


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count as a test)."""
    idx = [i for i, p in enumerate(pvalues) if not math.isnan(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    out, running = list(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        out[i] = running
    return out


def _verdict(c: dict, metric: str) -> str:
    if c["test"] == "none":
        return f"too few seeds to tell (n = {c['n']})"
    if math.isnan(c["p_holm"]):
        return "no spread over seeds: cannot test"
    if c["p_holm"] < ALPHA:
        good = (c["diff"] > 0) == higher_is_better(metric)
        return "better than the baseline" if good else "worse than the baseline"
    few = f"; with n = {c['n']} seeds only large differences show" if c["n"] < 5 else ""
    return f"no clear difference{few}"


def _values(rows: list[dict], metric: str) -> dict[int, float]:
    return {r["seed"]: float(r[metric]) for r in rows
            if r["status"] == "done" and r.get(metric) is not None and math.isfinite(float(r[metric]))}


def compare(rows: list[dict], baseline: str = "relu", metric: str = "test_acc", *, boots: int = 10_000,
            seed: int = 0) -> list[Comparison]:
    """Every activation against ``baseline`` within each (experiment, dataset, model) of ``rows``
    (the rows of :func:`actlab.experiments.results.run_rows`)."""
    if rows and metric not in rows[0]:
        numeric = sorted(k for k, v in rows[0].items() if isinstance(v, (int, float)) and k != "seed")
        raise ActlabError(f"unknown metric {metric!r}; one of {', '.join(numeric)}")
    activations = sorted({r["activation"] for r in rows})
    if baseline not in activations:
        raise ActlabError(f"no run has activation {baseline!r}; the activations are {', '.join(activations)}")
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in KEYS), {}).setdefault(r["activation"], []).append(r)
    rng, out = np.random.default_rng(seed), []
    for key, by_act in groups.items():
        if baseline not in by_act:
            continue
        base = _values(by_act[baseline], metric)
        found = []
        for act in sorted(a for a in by_act if a != baseline):
            mine = _values(by_act[act], metric)
            common = sorted(set(mine) & set(base))
            c = {"activation": act, "activation_mean": _mean(mine.values()), "baseline_mean": _mean(base.values())}
            if len(common) >= 2:
                a, b = np.array([mine[s] for s in common]), np.array([base[s] for s in common])
                c |= {"test": "paired t", "n": len(common)}
                stats_ = _paired(a, b, rng, boots)
            elif min(len(mine), len(base)) >= 2:
                c |= {"test": "Welch t", "n": min(len(mine), len(base))}
                stats_ = _welch(np.array(list(mine.values())), np.array(list(base.values())), rng, boots)
            else:
                c |= {"test": "none", "n": min(len(mine), len(base))}
                diff = c["activation_mean"] - c["baseline_mean"]
                stats_ = (diff, math.nan, math.nan, math.nan, math.nan, math.nan)
            c |= dict(zip(("diff", "ci_low", "ci_high", "boot_low", "boot_high", "p"), map(float, stats_)))
            found.append(c)
        for c, p_adj in zip(found, holm([c["p"] for c in found])):
            c["p_holm"] = p_adj
            out.append(Comparison(*key, baseline=baseline, metric=metric, verdict=_verdict(c, metric), **c))
    return out


def _mean(values) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan
