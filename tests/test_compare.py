"""actlab compare: differences to a baseline over seeds, against scipy's tests and Holm by hand."""

import math

import numpy as np
import pytest
from scipy import stats

from actlab.cli import main
from actlab.errors import ActlabError
from actlab.experiments import parse_config, run_experiment
from actlab.experiments.compare import compare, holm


def _rows(values: dict[str, list[float]], seeds=None) -> list[dict]:
    rows = []
    for act, accs in values.items():
        for i, acc in enumerate(accs):
            seed = (seeds or {}).get(act, list(range(len(accs))))[i]
            rows.append({"experiment": "e", "dataset": "d", "model": "m", "activation": act, "seed": seed,
                         "status": "done", "test_acc": acc, "test_loss": 1 - acc})
    return rows


def test_matching_seeds_give_scipys_paired_t_and_a_t_interval_around_the_mean_difference():
    relu, slaf = [0.90, 0.91, 0.93, 0.92, 0.90], [0.93, 0.92, 0.95, 0.95, 0.92]
    (c,) = compare(_rows({"relu": relu, "slaf": slaf}))
    d = np.subtract(slaf, relu)
    assert c.test == "paired t" and c.n == 5
    assert c.p == pytest.approx(stats.ttest_rel(slaf, relu).pvalue)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (c.ci_low, c.diff, c.ci_high) == pytest.approx((d.mean() - half, d.mean(), d.mean() + half))
    assert c.boot_low <= c.diff <= c.boot_high
    assert c.verdict == "better than the baseline"


def test_unmatched_seeds_fall_back_to_welch_and_a_single_seed_is_not_tested():
    rows = _rows({"relu": [0.90, 0.92, 0.91], "tanh": [0.85, 0.86, 0.84]}, seeds={"tanh": [10, 11, 12]})
    (c,) = compare(rows)
    assert c.test == "Welch t"
    assert c.p == pytest.approx(stats.ttest_ind([0.85, 0.86, 0.84], [0.90, 0.92, 0.91], equal_var=False).pvalue)
    assert c.verdict == "worse than the baseline"
    (one,) = compare(_rows({"relu": [0.9], "tanh": [0.95]}))
    assert one.test == "none" and math.isnan(one.p) and one.verdict == "too few seeds to tell (n = 1)"


def test_lower_is_better_for_losses_and_identical_differences_cannot_be_tested():
    (c,) = compare(_rows({"relu": [0.90, 0.91, 0.93, 0.92], "slaf": [0.95, 0.95, 0.96, 0.97]}), metric="test_loss")
    assert c.diff < 0 and c.verdict == "better than the baseline"
    (same,) = compare(_rows({"relu": [0.9, 0.8], "x": [0.9, 0.8]}))
    assert same.verdict == "no spread over seeds: cannot test"


def test_holm_multiplies_the_sorted_p_values_by_the_tests_left_and_keeps_them_monotone():
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    rows = _rows({"relu": [0.90, 0.91, 0.93], "a": [0.95, 0.96, 0.97], "b": [0.91, 0.90, 0.94]})
    found = {c.activation: c for c in compare(rows)}
    raw = [found["a"].p, found["b"].p]
    assert [found["a"].p_holm, found["b"].p_holm] == pytest.approx(holm(raw))


def test_unknown_baseline_and_metric_are_one_line_errors():
    with pytest.raises(ActlabError, match="no run has activation 'gelu'"):
        compare(_rows({"relu": [0.9, 0.8]}), baseline="gelu")
    with pytest.raises(ActlabError, match="unknown metric 'accuracy'"):
        compare(_rows({"relu": [0.9, 0.8]}), metric="accuracy")


def test_cli_compare_prints_the_table_writes_csv_and_exits_2_on_a_bad_baseline(tmp_path, capsys):
    cfg = parse_config({"name": "c", "datasets": ["moons"], "models": ["mlp(widths=[8])"],
                        "activations": ["relu", "tanh"], "seeds": [0, 1, 2], "epochs": 1, "lr": 0.01})
    run_experiment(cfg, tmp_path, progress=False).close()
    assert main(["compare", str(tmp_path), "--baseline", "relu"]) == 0
    out = capsys.readouterr().out
    assert "tanh" in out and "paired t" in out and (tmp_path / "compare.csv").is_file()
    assert main(["compare", str(tmp_path), "--baseline", "gelu"]) == 2
    assert "no run has activation 'gelu'" in capsys.readouterr().err
