"""compress_model: which sites it replaces, accuracy on calibration data, bad arguments."""

import pytest
import torch
from torch import nn

from actlab.activations import Expression, make_activation
from actlab.compress import (
    CubicActivation,
    PolyActivation,
    PWLActivation,
    compress_model,
    find_activations,
    format_report,
)
from actlab.errors import ActlabError


class ChannelSwish(nn.Module):
    """x * sigmoid(beta_c x) with a trainable beta per channel (dim 1)."""

    def __init__(self, channels):
        super().__init__()
        self.beta = nn.Parameter(torch.linspace(0.5, 2.0, channels))

    def forward(self, x):
        return x * torch.sigmoid(self.beta.view(1, -1, *([1] * (x.ndim - 2))) * x)


class TinyNet(nn.Module):
    """An activation made of Linear layers, marked as one site."""

    is_activation = True

    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):
        return self.inner(x.unsqueeze(-1)).squeeze(-1)


def _mlp(act):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), act, nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def test_relu_is_kept_and_an_expression_is_replaced_with_outputs_close():
    model = _mlp(make_activation("mul(x,sigmoid(x))")).eval()
    x = torch.randn(512, 5)
    new, report = compress_model(model, knots=64, calibration=x, fast="eager")
    assert isinstance(new[1], PWLActivation) and isinstance(new[3], nn.ReLU)
    assert isinstance(model[1], Expression)  # the original is untouched
    assert [r.name for r in report] == ["1"]
    assert report[0].max_error < 1e-3 and report[0].original == "Expression"
    torch.testing.assert_close(new(x), model(x), atol=5e-3, rtol=0)


@pytest.mark.parametrize("method,kwargs,cls", [("cubic", {"knots": 16}, CubicActivation),
                                               ("poly", {"degree": 8}, PolyActivation)])
def test_other_methods_replace_swish(method, kwargs, cls):
    model = _mlp(make_activation("swish")).eval()
    x = torch.randn(512, 5)
    new, report = compress_model(model, method=method, calibration=[x[:256], x[256:]], **kwargs)
    assert isinstance(new[1], cls)
    torch.testing.assert_close(new(x), model(x), atol=1e-2, rtol=0)


def test_per_channel_parameters_give_per_channel_tables_in_a_conv_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), ChannelSwish(4), nn.Flatten(), nn.Linear(4 * 36, 2)).eval()
    x = torch.randn(64, 2, 8, 8)
    new, report = compress_model(model, tolerance=1e-3, calibration=x, fast="eager")
    assert isinstance(new[1], PWLActivation) and new[1].values.shape[0] == 4
    assert report[0].channels == 4 and report[0].max_error <= 1e-3
    torch.testing.assert_close(new(x), model(x), atol=2e-2, rtol=0)


def test_marked_composite_activation_is_one_site_and_skip_is_respected():
    model = _mlp(TinyNet())
    assert list(find_activations(model)) == ["1", "3"]
    x = torch.randn(128, 5)
    new, _ = compress_model(model, knots=32, calibration=x, fast="eager")
    assert isinstance(new[1], PWLActivation)
    kept, report = compress_model(model, knots=32, calibration=x, skip=lambda name, m: name == "1")
    assert isinstance(kept[1], TinyNet) and report == []


def test_a_shared_module_is_replaced_everywhere_and_a_bare_activation_too():
    act = nn.GELU()
    model = nn.Sequential(nn.Linear(3, 3), act, nn.Linear(3, 3), act)
    new, report = compress_model(model, knots=16, calibration=torch.randn(32, 3), fast="eager")
    assert new[1] is new[3] and isinstance(new[1], PWLActivation)
    assert [r.name for r in report] == ["1", "3"]
    bare, _ = compress_model(nn.Tanh(), knots=16, calibration=torch.randn(100), fast="eager")
    assert isinstance(bare, PWLActivation)
    assert "| 1 | GELU | pwl | 16 |" in format_report(report)


def test_subnet_family_is_compressed():
    act = make_activation("subnet(hidden=16)")
    model = _mlp(act).eval()
    x = torch.randn(256, 5)
    new, report = compress_model(model, knots=64, calibration=x, fast="eager")
    assert isinstance(new[1], PWLActivation)
    assert report[0].weighted_error < 1e-2


@pytest.mark.parametrize("kwargs,message", [
    ({"knots": 8, "tolerance": 1e-3}, "not both"),
    ({}, "give knots or tolerance"),
    ({"knots": 1}, "at least 2"),
    ({"method": "poly", "degree": 0}, "at least 1"),
    ({"method": "poly", "knots": 8}, "knots does not apply"),
    ({"method": "spline", "knots": 8}, "unknown compression method 'spline'"),
    ({"knots": 8, "calibration": []}, "calibration data is empty"),
    ({"knots": 8, "calibration": None}, "needs calibration data"),
])
def test_bad_arguments_raise_one_clear_line(kwargs, message):
    kwargs.setdefault("calibration", torch.randn(4, 5))
    with pytest.raises(ActlabError, match=message) as info:
        compress_model(_mlp(nn.Tanh()), **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("act", [nn.GELU(), nn.SiLU(), nn.Tanh(), nn.Sigmoid(), nn.Mish(), nn.ELU(), nn.Softplus()],
                         ids=lambda m: type(m).__name__)
def test_a_users_fixed_activation_compresses_and_stays_within_the_fits_max_error(act):
    model = nn.Sequential(nn.Linear(5, 16), act).eval()  # the activation is the output: its error is visible
    x = torch.randn(2048, 5)
    new, report = compress_model(model, knots=64, calibration=x, fast="eager")
    assert isinstance(new[1], PWLActivation) and report[0].original == type(act).__name__
    with torch.no_grad():
        inside = ((new[0](x) >= report[0].lo) & (new[0](x) <= report[0].hi))
        err = (new(x) - model(x)).abs()
    assert float(err[inside].max()) <= report[0].max_error * (1 + 1e-4) + 1e-6
    assert report[0].max_error < 2e-3
