"""Compressed forms beyond the calibration range: the target's own tails, exact splines, the stress report."""

import pytest
import torch
from torch import nn

from actlab import make_activation
from actlab.activations.sites import Site
from actlab.compress import compress_model, format_report
from actlab.compress.modules import PolyActivation
from actlab.errors import ActlabError

FAR = torch.tensor([-8.0, -4.0, 4.0, 8.0])


def _perturbed(spec: str, site: Site | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    act = make_activation(spec, site)
    with torch.no_grad():
        for p in act.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return act


def _model(spec: str, site: Site | None = None) -> tuple[nn.Module, torch.Tensor]:
    act = _perturbed(spec, site)
    return nn.Sequential(nn.Linear(4, 8), act).eval(), torch.randn(512, 4, generator=torch.Generator().manual_seed(1))


def _far_error(model: nn.Module, new: nn.Module, xs: torch.Tensor = FAR) -> float:
    with torch.no_grad():
        return float((model[1](xs) - new[1](xs)).abs().max())


def test_the_issue_s_linear_spline_compresses_exactly_at_any_input_by_reusing_its_knots():
    model, x = _model("spline(knots=32)")
    new, report = compress_model(model, method="pwl", knots=64, calibration=x)
    assert report[0].exact and report[0].size == 32
    assert _far_error(model, new, torch.linspace(-1e3, 1e3, 2001)) < 1e-3
    assert _far_error(model, new) < 1e-5
    edge, _ = compress_model(model, method="pwl", knots=64, calibration=x, tails="edge")
    assert _far_error(model, edge) > 1.0  # what the issue saw: the end segments run away


def test_a_tolerance_on_a_linear_spline_is_met_by_its_own_table():
    model, x = _model("spline(knots=32)")
    _, report = compress_model(model, method="pwl", tolerance=1e-3, calibration=x)
    assert report[0].exact and report[0].max_error < 1e-5


def test_a_cubic_spline_compresses_exactly_to_a_cubic_table_per_channel():
    torch.manual_seed(0)
    act = _perturbed("spline(knots=12,order=3,sharing=channel)", Site(8))
    model = nn.Sequential(nn.Linear(4, 8), act).eval()
    new, report = compress_model(model, method="cubic", knots=16, calibration=torch.randn(256, 4))
    assert report[0].exact and report[0].channels == 8
    xs = torch.linspace(-20, 20, 401)[:, None].expand(-1, 8)
    with torch.no_grad():
        assert float((act(xs) - new[1](xs)).abs().max()) < 1e-4


@pytest.mark.parametrize("method,size", [("pwl", {"knots": 64}), ("cubic", {"knots": 32}), ("poly", {"degree": 6})])
@pytest.mark.parametrize("spec", ["slaf(degree=6)", "spline(knots=32)", "spline(knots=32,order=3)"])
def test_targets_with_linear_tails_are_followed_far_beyond_the_calibration_range(spec, method, size):
    model, x = _model(spec)
    new, report = compress_model(model, method=method, calibration=x, **size)
    edge, edge_report = compress_model(model, method=method, calibration=x, tails="edge", **size)
    within = max(report[0].max_error, 1e-6)
    if method != "poly":  # a polynomial's range is never widened to the target's breakpoints
        assert _far_error(model, new) <= 20 * within + 1e-4  # the tail line is the target's own
    assert report[0].stress_max < edge_report[0].stress_max


@pytest.mark.parametrize("spec", ["gelu", "silu", "tanh", "rational"])
def test_target_tails_change_outputs_on_the_stress_set_less_than_end_segments(spec):
    model, x = _model(spec)
    new, report = compress_model(model, method="pwl", knots=64, calibration=x)
    _, edge = compress_model(model, method="pwl", knots=64, calibration=x, tails="edge")
    assert report[0].stress_max < edge[0].stress_max
    assert report.model["stress"].max < edge.model["stress"].max


def test_the_report_gives_changes_per_site_and_for_the_model_on_calibration_and_stress_inputs():
    model, x = _model("gelu")
    new, report = compress_model(model, method="pwl", knots=16, calibration=x)
    site = report[0]
    assert 0 < site.sample_mean <= site.sample_max and 0 < site.stress_mean <= site.stress_max
    with torch.no_grad():
        direct = float((model(2 * x) - new(2 * x)).abs().max())
    assert report.model["stress"].max == pytest.approx(direct, rel=1e-6)
    assert 0.9 <= report.model["calibration"].agreement <= 1.0
    text = format_report(report)
    assert "stress set (inputs x2)" in text and "predictions kept" in text


def test_a_polynomial_keeps_the_given_tail_slopes_and_reads_files_without_them():
    poly = PolyActivation(torch.tensor([0.0, 1.0, 1.0]), -1.0, 1.0, tails=torch.tensor([[0.5, 3.0]]))
    assert torch.allclose(poly(torch.tensor([-3.0, 3.0])), torch.tensor([-1.0, 8.0]))
    old_state = {k: v for k, v in poly.state_dict().items() if k != "tail_slope"}
    fresh = PolyActivation(torch.zeros(3), 0.0, 2.0)
    fresh.load_state_dict(old_state)
    # without stored tails: the tangent at the ends, u + u^2 has slope -1 at u = -1 and 3 at u = 1
    assert torch.allclose(fresh(torch.tensor([-3.0, 3.0])), torch.tensor([2.0, 8.0]))


def test_unknown_tails_option_is_a_one_line_error():
    model, x = _model("gelu")
    with pytest.raises(ActlabError, match="tails must be"):
        compress_model(model, calibration=x, knots=8, tails="far")
