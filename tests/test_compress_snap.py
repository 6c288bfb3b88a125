"""Symbolic snapping recovers known closed forms and their constants."""

import pytest
import torch
from torch import nn

from actlab.compress.snap import SnappedActivation, candidate_expressions, snap_module


class Affine(nn.Module):
    def __init__(self, f, a, b, c, d):
        super().__init__()
        self.f, self.abcd = f, (a, b, c, d)

    def forward(self, x):
        a, b, c, d = self.abcd
        return a * self.f(b * x + c) + d


class ChannelErf(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))

    def forward(self, x):
        return self.scale * torch.erf(x)


def test_snapping_recovers_a_scaled_shifted_tanh():
    result = snap_module(Affine(torch.tanh, 2.0, 0.5, 0.1, -0.3))
    assert result.expression == "tanh(x)"
    m = result.module
    for got, want in zip((m.a, m.b, m.c, m.d), (2.0, 0.5, 0.1, -0.3)):
        assert float(got) == pytest.approx(want, abs=1e-4)
    assert result.max_error < 1e-5


def test_snapping_recovers_swish_weighted_by_a_sample():
    result = snap_module(Affine(lambda x: x * torch.sigmoid(x), 1.5, 1.0, 0.0, 0.0), sample=torch.randn(2000))
    assert result.expression == "swish(x)"
    assert float(result.module.a) == pytest.approx(1.5, abs=1e-4)


def test_per_channel_snapping_keeps_constants_per_channel():
    result = snap_module(ChannelErf(), lo=-3.0, hi=3.0, width=3)
    assert result.expression == "erf(x)"
    torch.testing.assert_close(result.module.a * result.module.b.sign(), torch.tensor([1.0, -2.0, 3.0]),
                               atol=1e-4, rtol=0)


def test_snapped_module_evaluates_its_formula():
    module = SnappedActivation("mul(x,sigmoid(x))", torch.tensor(2.0), torch.tensor(3.0), torch.tensor(1.0),
                               torch.tensor(-1.0))
    x = torch.linspace(-2, 2, 9)
    z = 3 * x + 1
    torch.testing.assert_close(module(x), 2 * z * torch.sigmoid(z) - 1)
    assert module.formula() == "2*mul((3*x+1),sigmoid((3*x+1)))-1"


def test_the_default_candidate_set_is_modest_and_valid():
    candidates = candidate_expressions()
    assert 50 < len(candidates) < 200 and len(set(candidates)) == len(candidates)
    x = torch.linspace(-1, 1, 5)
    for text in candidates:
        SnappedActivation(text, *torch.ones(4))(x)  # every candidate parses and runs
