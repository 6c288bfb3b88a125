"""Cost accounting: FLOPs per element by formula and by counting, layer FLOPs, latency."""

import pytest
import torch
from torch import nn

from actlab.activations import make_activation
from actlab.activations.flops import TRANSCENDENTAL, counted_flops_per_element, flops_per_element
from actlab.activations.learnable.subnet import subnet_flops
from actlab.compress.cost import measure_latency, model_cost, poly_flops
from actlab.compress.modules import PolyActivation, PWLActivation


class BroadcastSubnet(nn.Module):
    """1 -> H -> 1 with tanh, applied elementwise by broadcasting."""

    def __init__(self, hidden):
        super().__init__()
        self.w1, self.b1 = nn.Parameter(torch.randn(hidden)), nn.Parameter(torch.randn(hidden))
        self.w2, self.b2 = nn.Parameter(torch.randn(hidden)), nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return (torch.tanh(x[..., None] * self.w1 + self.b1) * self.w2).sum(-1) + self.b2


@pytest.mark.parametrize("spec,expected", [
    ("relu", 1.0), ("identity", 0.0), ("tanh", TRANSCENDENTAL), ("leaky_relu", 2.0),
    ("mul(x,sigmoid(x))", TRANSCENDENTAL + 3), ("swish", TRANSCENDENTAL + 3),
    ("max(relu(x),tanh(x))", TRANSCENDENTAL + 2),
])
def test_counted_flops_of_fixed_activations_and_expressions(spec, expected):
    assert flops_per_element(make_activation(spec)) == expected


def test_a_module_s_own_formula_is_preferred_to_counting():
    table = PWLActivation(torch.zeros(64), -1.0, 1.0, fast="eager")
    assert flops_per_element(table) == 8.0
    assert flops_per_element(PolyActivation(torch.zeros(5), -1.0, 1.0)) == 8 + poly_flops(4)


def test_counted_subnet_flops_equal_the_formula():
    assert counted_flops_per_element(BroadcastSubnet(16)) == subnet_flops(16, 1, TRANSCENDENTAL)


def test_linear_layer_flops_are_two_in_out_plus_bias_per_sample():
    cost = model_cost(nn.Sequential(nn.Linear(7, 5), nn.Linear(5, 3, bias=False)), torch.randn(4, 7))
    assert cost.layer_flops == 2 * 7 * 5 + 5 + 2 * 5 * 3
    assert cost.params == 7 * 5 + 5 + 5 * 3


def test_conv_flops_and_activation_flops_per_sample():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, groups=1), nn.Tanh(), nn.Conv2d(4, 4, 1, groups=2, bias=False))
    cost = model_cost(model, torch.randn(2, 3, 6, 6))
    outputs = 4 * 4 * 4  # 4 channels of 4 x 4
    assert cost.layer_flops == 2 * outputs * 3 * 9 + outputs + 2 * outputs * 2
    assert cost.activation_flops == TRANSCENDENTAL * outputs
    assert cost.flops == cost.layer_flops + cost.activation_flops


def test_latency_is_measured_for_each_batch_size():
    latency = measure_latency(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), (4,), (1, 8), repeats=3, warmup=1)
    assert set(latency) == {1, 8} and all(t > 0 for t in latency.values())


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("slaf(degree=4,basis=chebyshev)", 4 * 4 + 5),
        ("slaf(degree=4,basis=monomial,hybrid=true)", 4 * 2 + 5 + 3),
        ("spline(knots=32)", 8),
        ("spline(knots=32,order=3)", 22),
        ("rational", 2 * 5 + 2 * 4 + 3),
        ("subnet(hidden=8)", 4 * 8 + 8 * 10),
    ],
)
def test_learnable_families_report_their_documented_flop_formula(spec, expected):
    # a fused kernel is one opaque op to the FLOP counter: the family must state its own cost
    from actlab.activations import Site, make_activation

    assert flops_per_element(make_activation(spec, Site(4, "conv")), 4, 4) == expected
