"""Every actlab activation pickles, deep-copies and torch.saves, and computes the same after."""

import copy
import io
import pickle

import pytest
import torch

import actlab
from actlab.activations.learnable.bases import BASES

SPECS = sorted(set(actlab.ACTIVATIONS.names()) - {"anneal"} | {f"slaf(basis={b},degree=4)" for b in BASES.names()}
               | {"anneal(base=gelu)"}
               | {"spline(knots=8,order=3)", "rational(sharing=channel)", "max(relu(x),cosh(elu(x)))"})


def _torch_roundtrip(module):
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


@pytest.mark.parametrize("spec", SPECS)
def test_an_activation_survives_pickle_deepcopy_and_torch_save(spec):
    act = actlab.make_activation(spec, actlab.Site(3)).eval()
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        expect = act(x)
        for clone in (pickle.loads(pickle.dumps(act)), copy.deepcopy(act), _torch_roundtrip(act)):
            torch.testing.assert_close(clone(x), expect, rtol=0, atol=0, equal_nan=True)
