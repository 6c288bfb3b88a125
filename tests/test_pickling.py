"""Every learnable family pickles (torch.save of a whole model, worker processes) and computes the same after."""

import pickle

import pytest
import torch

import actlab
from actlab.activations.learnable.bases import BASES

SPECS = [f"slaf(basis={b},degree=4)" for b in BASES.names()] + ["spline(knots=8)", "spline(knots=8,order=3)",
                                                                  "rational", "subnet(hidden=4)"]


@pytest.mark.parametrize("spec", SPECS)
def test_a_learnable_activation_pickles_and_gives_the_same_outputs(spec):
    act = actlab.make_activation(spec, actlab.Site(3)).eval()
    copy = pickle.loads(pickle.dumps(act))
    x = torch.randn(5, 3, 4)
    torch.testing.assert_close(copy(x), act(x), rtol=0, atol=0)
