"""Compressed modules: formulas against numpy, state_dict round trips, the fused fast path."""

import numpy as np
import pytest
import torch

from actlab.compress import _fastpath
from actlab.compress.modules import CubicActivation, PolyActivation, PWLActivation
from actlab.errors import ActlabError


def _modules():
    g = torch.Generator().manual_seed(1)
    return [
        PWLActivation(torch.randn(3, 9, generator=g), torch.tensor([-1.0, -2.0, 0.0]), torch.tensor([1.0, 2.0, 3.0])),
        CubicActivation(torch.randn(3, 8, 4, generator=g), -2.0, 2.0),
        PolyActivation(torch.randn(3, 5, generator=g), -1.0, torch.tensor([1.0, 2.0, 3.0])),
    ]


def test_per_channel_table_matches_numpy_interp_per_channel():
    module = _modules()[0]
    x = torch.linspace(-1, 1, 50)[:, None].expand(-1, 3).contiguous()
    y = module(x)
    for c in range(3):
        knots = np.linspace(float(module.lo[c]), float(module.hi[c]), 9)
        inside = (x[:, c] >= module.lo[c]) & (x[:, c] <= module.hi[c])
        np.testing.assert_allclose(y[inside, c].numpy(), np.interp(x[inside, c].numpy(), knots,
                                                                    module.values[c].numpy()), atol=1e-6)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_state_dict_round_trip_restores_the_function(index):
    module = _modules()[index]
    args = _init_args(module)
    fresh = type(module)(torch.zeros_like(args.pop("table")), **args)
    fresh.load_state_dict(module.state_dict())
    x = torch.randn(4, 3, 2, 2) * 3
    torch.testing.assert_close(fresh(x), module(x))


def _init_args(module):
    table = {"PWLActivation": "values", "CubicActivation": "coef", "PolyActivation": "coeffs"}[type(module).__name__]
    return {"table": getattr(module, table), "lo": module.lo - 1, "hi": module.hi + 1}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_curve_is_per_channel_and_agrees_with_forward(index):
    module = _modules()[index]
    xs = torch.linspace(-3, 3, 11)
    curves = module.curve(xs)
    assert curves.shape == (3, 11)
    torch.testing.assert_close(curves[1], module(xs[:, None].expand(-1, 3))[:, 1])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_nan_input_gives_nan_and_leaves_other_elements_alone(index):
    module = _modules()[index]
    x = torch.randn(5, 3) * 3
    x_nan = x.clone()
    x_nan[2, 1] = float("nan")
    y, y_nan = module(x), module(x_nan)  # a NaN segment index once read out of bounds in the cubic
    assert y_nan[2, 1].isnan() and y_nan.isnan().sum() == 1
    torch.testing.assert_close(y_nan.nan_to_num(0.0), y.index_put((torch.tensor([2]), torch.tensor([1])),
                                                                  torch.tensor(0.0)))


def test_shared_table_curve_is_one_dimensional():
    module = PWLActivation(torch.arange(4.0), 0.0, 3.0)
    torch.testing.assert_close(module.curve(torch.tensor([-1.0, 1.5, 5.0])), torch.tensor([-1.0, 1.5, 5.0]))


def test_polynomial_is_evaluated_in_the_normalised_variable():
    module = PolyActivation(torch.tensor([1.0, 2.0, 3.0]), 0.0, 4.0)  # 1 + 2u + 3u^2, u = (x - 2) / 2
    x = torch.tensor([0.0, 1.0, 3.0, 4.0])
    u = (x - 2) / 2
    torch.testing.assert_close(module(x), 1 + 2 * u + 3 * u**2)


def test_wrong_channel_count_and_bad_tables_raise():
    with pytest.raises(ActlabError, match="3 channels"):
        _modules()[0](torch.randn(2, 4))
    with pytest.raises(ActlabError, match="at least 2 knots"):
        PWLActivation(torch.zeros(1), 0.0, 1.0)
    with pytest.raises(ActlabError, match="hi > lo"):
        PWLActivation(torch.zeros(4), 1.0, 1.0)
    with pytest.raises(ActlabError, match="fast must be"):
        PWLActivation(torch.zeros(4), 0.0, 1.0, fast="turbo")


def test_fast_path_falls_back_to_eager_with_a_warning_when_compile_fails(monkeypatch):
    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(_fastpath, "_compiled_lookup", broken)
    monkeypatch.setattr(_fastpath, "_choice", {})
    monkeypatch.setattr(_fastpath, "_warned", False)
    module = PWLActivation(torch.randn(8), -1.0, 1.0, fast="compiled").eval()
    x = torch.randn(100)
    with pytest.warns(UserWarning, match="no compiler"):
        y = module(x)
    module.fast = "eager"
    torch.testing.assert_close(y, module(x))


def test_compiled_fast_path_equals_the_eager_reference():
    """Slow (torch.compile, about 10 s on first use); one compiled graph with dynamic shapes."""
    per_channel = _modules()[0].eval()
    shared = PWLActivation(torch.randn(64), -4.0, 4.0).eval()
    for module, x in ((per_channel, torch.randn(16, 3, 8, 8) * 3), (shared, torch.randn(16, 3, 8, 8) * 5)):
        module.fast = "eager"
        reference = module(x)
        module.fast = "compiled"
        with torch.inference_mode():
            fast = module(x)
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
    # a silent fallback to eager would make the comparison vacuous
    assert set(_fastpath.chosen_paths().values()) == {"compiled"}
