"""The pure table, Pareto-front and verdict functions of bench/compress_accuracy.py and bench/pareto.py;
bench/gpu_speed.py end to end on tiny sizes on the CPU."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import _pareto_report as report  # noqa: E402
import compress_accuracy  # noqa: E402
import gpu_speed  # noqa: E402
import pareto  # noqa: E402


def _row(activation, seed, original, compressed, experiment="accuracy_titanic"):
    return {"experiment": experiment, "dataset": "d", "model": "m", "activation": activation, "seed": seed,
            "original_acc": original, "compressed_acc": compressed, "delta_pp": 100 * (compressed - original),
            "sites": [{"name": "acts.0", "channels": 1, "max_error": 0.1 * (seed + 1),
                       "weighted_error": 0.01 * (seed + 1), "lo": -1.0, "hi": 2.0}]}


def test_compression_summary_means_changes_and_goal_over_seeds():
    rows = [_row("rational", 0, 0.80, 0.80), _row("rational", 1, 0.82, 0.81), _row("rational", 2, 0.84, 0.85),
            _row("spline(knots=32)", 0, 0.70, 0.71)]
    by_act = {s["activation"]: s for s in compress_accuracy.summarize(rows, {"accuracy_titanic": 134})}
    r = by_act["rational"]
    assert r["seeds"] == 3 and r["original_mean"] == pytest.approx(0.82)
    assert r["original_std"] == pytest.approx(0.02)  # sample std of 0.80, 0.82, 0.84
    assert r["mean_delta_pp"] == pytest.approx(0.0, abs=1e-9) and r["max_abs_delta_pp"] == pytest.approx(1.0)
    assert r["goal_met"]  # +1 and -1 pp cancel in the mean, which is what the goal measures
    assert not by_act["spline(knots=32)"]["goal_met"]  # +1 pp


def test_site_errors_average_each_site_over_seeds():
    errors = compress_accuracy.site_errors([_row("rational", s, 0.8, 0.8) for s in range(3)])
    assert len(errors) == 1
    assert errors[0]["max_error_mean"] == pytest.approx(0.2)
    assert errors[0]["weighted_error_mean"] == pytest.approx(0.02)


def test_missing_runs_are_those_neither_compressed_nor_skipped():
    rows = [_row("rational", 0, 0.8, 0.8)]
    skipped = [{"experiment": "accuracy_titanic", "activation": "rational", "seed": 1, "status": "diverged"}]
    expected = [("accuracy_titanic", "rational", s) for s in range(3)]
    assert compress_accuracy.missing_runs(rows, skipped, expected) == [("accuracy_titanic", "rational", 2)]


def test_learned_families_exclude_fixed_and_compressed_activations():
    assert compress_accuracy.is_learned("slaf(basis=chebyshev,degree=4)")
    assert not compress_accuracy.is_learned("relu")
    assert not compress_accuracy.is_learned("rational -> pwl(knots=64)")
    assert pareto.is_learned("subnet(hidden=8)") and not pareto.is_learned("sigmoid")


def test_pareto_front_keeps_exactly_the_non_dominated_points_by_cost():
    points = [(10, 0.5), (5, 0.6), (20, 0.9), (20, 0.8), (5, 0.6), (30, 0.9), (1, 0.1)]
    # (10, .5) is beaten by (5, .6); (20, .8) by (20, .9); (30, .9) by (20, .9); equal points both stay
    assert report.pareto_front(points) == [6, 1, 4, 2]


def _config(activation, width, acc, std, stored, compressed=False):
    return {"activation": activation, "width": width, "acc_mean": acc, "acc_std": std, "compressed": compressed,
            "seeds": 3,
            "params": stored, "stored": stored, "flops": 2 * stored, "latency_b1_ms": 1.0, "latency_b256_ms": 2.0}


def test_matches_finds_smallest_compressed_model_within_one_std_of_best_relu():
    configs = [_config("relu", 4, 0.80, 0.01, 100), _config("relu", 8, 0.86, 0.02, 200),
               _config("relu", 16, 0.85, 0.01, 400),
               _config("rational", 2, 0.83, 0.0, 60, True), _config("rational", 4, 0.845, 0.0, 130, True),
               _config("rational", 8, 0.87, 0.0, 230, True), _config("spline(knots=32)", 8, 0.80, 0.0, 230, True)]
    m = report.matches(configs)
    assert m["best_relu"]["width"] == 8 and m["threshold"] == pytest.approx(0.84)
    assert m["smallest_matching_relu"]["width"] == 8  # width 16 also matches but is larger
    hit = m["per_family"]["rational"]
    assert hit["config"]["width"] == 4
    assert hit["vs_best_relu"]["stored"] == pytest.approx(130 / 200)
    assert hit["vs_best_relu"]["flops"] == pytest.approx(130 / 200)
    assert m["per_family"]["spline(knots=32)"] is None
    assert m["overall"]["config"]["activation"] == "rational"


def test_matches_reports_none_when_no_compressed_model_reaches_relu():
    configs = [_config("relu", 8, 0.9, 0.0, 200), _config("rational", 8, 0.89, 0.0, 230, True)]
    assert report.matches(configs)["overall"] is None


def test_aggregate_takes_mean_std_over_done_seeds_and_median_costs():
    cost = lambda f: {"flops": f, "activation_flops": f / 2, "stored": 10}  # noqa: E731
    rows = [{"width": 4, "model": "m", "activation": "relu", "compressed": False, "seed": s, "status": st,
             "acc": acc, "params": 10, "cost": cost(f)}
            for s, st, acc, f in [(0, "done", 0.7, 10), (1, "done", 0.9, 30), (2, "diverged", None, 20)]]
    (c,) = pareto.aggregate(rows)
    assert c["seeds"] == 2 and c["diverged"] == 1
    assert c["acc_mean"] == pytest.approx(0.8) and c["acc_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert c["flops"] == 20 and c["activation_flops"] == 10 and c["stored"] == 10


def test_flops_undercount_is_flagged_only_when_the_original_counts_below_its_table():
    original = _config("rational", 4, 0.8, 0.0, 100) | {"activation_flops": 10}
    table = _config("rational", 4, 0.8, 0.0, 130, True) | {"activation_flops": 80}
    assert report.flops_undercounted(original, [original, table])
    assert not report.flops_undercounted(original | {"activation_flops": 210}, [original, table])
    assert not report.flops_undercounted(table, [original, table])


def test_latency_spread_is_interquartile_range_over_median():
    # quantiles (exclusive method) of 1..5: q1 = 1.5, q3 = 4.5; median 3
    assert pareto.spread([5.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(1.0)


def _timed(activation, width, acc, std, b1, b256, compressed=True):
    return _config(activation, width, acc, std, 100, compressed) | {"latency_b1_ms": b1, "latency_b256_ms": b256}


def test_verdict_names_compressed_models_as_accurate_as_best_relu_and_faster_per_batch_and_criterion():
    configs = [_timed("relu", 8, 0.86, 0.02, 1.0, 2.0, False), _timed("relu", 16, 0.85, 0.0, 0.5, 0.5, False),
               _timed("rational", 4, 0.87, 0.01, 0.8, 2.5),  # reaches the mean: faster at batch 1 only
               _timed("spline(knots=32)", 8, 0.845, 0.0, 1.2, 1.5),  # reaches mean - std: faster at batch 256
               _timed("slaf", 2, 0.80, 0.0, 0.1, 0.1),  # fast but reaches neither
               _timed("rational", 8, 0.90, 0.0, 0.1, 0.1, False)]  # not compressed: never counts
    v = report.verdict(configs)
    assert v["best_relu"]["width"] == 8  # the most accurate ReLU, not the fastest
    mean, loose = v["criteria"]["mean"], v["criteria"]["mean_minus_std"]
    assert mean["threshold"] == pytest.approx(0.86) and loose["threshold"] == pytest.approx(0.84)
    assert mean["accurate"] == 1 and loose["accurate"] == 2
    assert mean["b1"]["yes"] and [c["width"] for c in mean["b1"]["faster"]] == [4]
    assert mean["b1"]["faster"][0]["latency_ratio"] == pytest.approx(0.8)
    assert mean["b256"]["yes"] is False and mean["b256"]["faster"] == []
    assert mean["b256"]["fastest"]["latency_ratio"] == pytest.approx(1.25)  # the nearest miss is still named
    assert [c["activation"] for c in loose["b1"]["faster"]] == ["rational"]
    assert [c["activation"] for c in loose["b256"]["faster"]] == ["spline(knots=32)"]
    text = "\n".join(report.verdict_lines(v, {"b1": 0.1, "b256": 0.1}))
    assert text.count("batch 1: **yes**") == 2 and "batch 256: **no**" in text and "batch 256: **yes**" in text


def test_verdict_is_open_while_a_latency_is_missing_and_empty_without_relu():
    configs = [_timed("relu", 8, 0.86, 0.0, 1.0, None, False), _timed("rational", 4, 0.87, 0.0, 2.0, 1.0)]
    v = report.verdict(configs)
    assert v["criteria"]["mean"]["b1"]["yes"] is False  # measured and slower
    assert v["criteria"]["mean"]["b256"]["yes"] is None
    assert report.verdict(configs[1:]) == {}


def test_gpu_speed_without_cuda_exits_with_code_2_and_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_speed.main([]) == 2
    captured = capsys.readouterr()
    assert captured.err == "gpu_speed needs a CUDA device; this torch sees none\n" and captured.out == ""


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # gpu_speed runs the CPU on one thread


def test_gpu_speed_smoke_runs_every_part_and_candidate_on_the_cpu(tmp_path, keep_threads, capsys):
    assert gpu_speed.main(["--device", "cpu", "--smoke", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "gpu_speed_smoke.json").read_text())
    assert res["smoke"] and res["errors"] == {}
    names = gpu_speed.candidates()
    assert len(names) == 1 + 2 * len(gpu_speed.FAMILIES)  # relu, then every family per layer and per channel
    for part in ("ops", "vit", "resnet"):
        for mode in ("float32", "bf16"):
            assert sorted(res[part][mode]["ms"]) == sorted(names)
            assert all(ms > 0 for ms in res[part][mode]["ms"].values())
    md = (tmp_path / "gpu_speed_smoke.md").read_text()
    assert "x relu (goal <= 1.5)" in md and "x relu (goal <= 1.1)" in md and "x relu (goal <= 1.05)" in md
    assert md.count("| pwl table 64 / channel |") == 3 and md == capsys.readouterr().out
