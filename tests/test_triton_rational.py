"""rational's Triton kernels (``actlab_triton::rational_fwd`` / ``rational_bwd``) against the float64 reference.

The reference is the same module (or ``RationalFn``) in float64, which never
takes a kernel. The specs (the default 5/4, 3/2, 1/1; layer and channel
sharing) run through the module in the three layouts of
:func:`actlab._triton.tiles` (conv maps, dense columns, one flat column) and
odd sizes, so that the autograd Function's own calls reach the kernels; inputs
reach far beyond the fitted range, up to 1e30, where the forward takes the
reversed polynomials in 1/x; NaN and +-inf must come out where the reference
puts them, +-inf as the limit also where a channel's top coefficients are 0.
"""

from __future__ import annotations

import operator

import pytest
import torch
from triton_helpers import (DEVICES, activation, assert_match, float64, graphs, input_with, kernel_device, on_kernels,
                            run)

from actlab import _cpp
from actlab.activations.learnable._autograd_rational import RationalFn

pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # numpy, in the interpreter

INF, NAN = float("inf"), float("nan")
TAILS = [-1e4, -40.0, -9.0, -3.7, 3.7, 9.0, 40.0, 1e4, 0.0]
HUGE = [1e30, -1e30, 3e12, -3e12, 1e8, -1e8]
SPECS = ["rational", "rational(num=3,den=2,sharing=channel)", "rational(num=1,den=1)"]
# (channels, shape): conv maps (one channel per column), dense (channels side by side), odd sizes
LAYOUTS = {"conv": (3, (2, 3, 5, 7)), "dense": (3, (37, 3)), "odd conv": (5, (2, 5, 3, 37)),
           "odd dense": (70, (9, 70))}


NAMES = ["output", "grad_input", "grad_numerator", "grad_denominator"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS)
def test_triton_rational_matches_the_float64_module_with_far_tails(device, spec, monkeypatch):
    module = activation(spec)
    x = input_with((2, 3, 5, 7), TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_triton_rational_matches_the_float64_module_in_every_layout_and_odd_size(device, layout, monkeypatch):
    channels, shape = LAYOUTS[layout]
    module = activation("rational(sharing=channel)", channels)
    x = input_with(shape, TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1031,), (2, 1, 3, 5), ()], ids=["two programs", "any shape", "0-d"])
def test_triton_rational_with_layer_sharing_takes_any_shape(device, shape, monkeypatch):
    module = activation("rational(num=3,den=2)")
    x = input_with(shape, TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS)
def test_triton_rational_puts_nan_inf_and_huge_inputs_where_the_reference_does(device, spec, monkeypatch):
    # 1e30 takes the reversed form forward and the scaled powers backward; +-inf gives the
    # limit forward (and the reference's NaN gradient, r dq = inf * 0)
    special = [NAN, INF, -INF, *HUGE, 0.0, 3.5]
    module = activation(spec)
    x = input_with((4, 3, 7), special)
    g = torch.randn(x.shape)
    g.view(-1)[:3] = 0.0  # NaN and +-inf: the parameter gradients stay finite, so they are compared too
    got = on_kernels(module, x, g, device, monkeypatch)
    assert torch.isnan(got[0].view(-1)[0])
    assert bool(torch.isinf(got[0].view(-1)[1:3]).all()) is ("num=1" not in spec)  # 1/1: a finite limit
    assert_match(got, float64(module, x, g), NAMES, rtol=1e-4)


def _zero_tops(module: torch.nn.Module) -> torch.nn.Module:
    """Channel 0 without its top numerator term, 1 without its top denominator term, 2 without both."""
    with torch.no_grad():
        module.numerator[[0, 2], -1] = 0.0
        module.denominator[[1, 2], -1] = 0.0
    return module


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", ["rational(sharing=channel)", "rational(num=2,den=3,sharing=channel)"])
def test_exact_top_zeros_give_each_channel_its_own_limit_at_infinity(device, spec, monkeypatch):
    module = _zero_tops(activation(spec))
    x = input_with((3, 3, 8), [INF, -INF, 1e30, -1e30, 1e8, 0.0] * 3)
    x[:, 1] = x[:, 0]
    x[:, 2] = x[:, 0]
    g = torch.randn(x.shape)
    got = on_kernels(module, x, g, device, monkeypatch)
    ref = float64(module, x, g)
    assert_match(got[:1], ref[:1], NAMES[:1])
    assert not got[0][:, :, :2].isnan().any()  # a limit, not inf / inf or 0 * inf
    # The gradients as the float32 reference gives them: beyond 1e30 it scales the powers by s^n,
    # n the declared degree, and a power below the top underflows where float64 keeps it.
    with _cpp.kernels_disabled():
        assert_match(got[1:], run(module.cpu(), x, g)[1:], NAMES[1:])


def _op_args(m: int, n: int, channels: int, device):
    gen = torch.Generator().manual_seed(3)
    return torch.randn(channels, m + 1, generator=gen).to(device), torch.randn(channels, n, generator=gen).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m, n, channels", [(5, 4, 3), (7, 2, 1), (2, 6, 3), (0, 1, 1)])
def test_triton_rational_ops_match_rational_fn_in_float64(device, m, n, channels):
    x = input_with((6, 3, 4), TAILS + [NAN, 1e6, -1e6])
    g = torch.randn(x.shape)
    with kernel_device(device) as dev:
        a, b = _op_args(m, n, channels, dev)
        y = torch.ops.actlab_triton.rational_fwd(x.to(dev), a, b)
        grads = torch.ops.actlab_triton.rational_bwd(g.to(dev), x.to(dev), a, b)
    xd, ad, bd = (t.detach().cpu().double().requires_grad_() for t in (x, a, b))
    yd = RationalFn.apply(xd, ad, bd)
    yd.backward(g.double())
    assert_match([y.cpu(), *(t.cpu() for t in grads)],
                 [t.float() for t in (yd.detach(), xd.grad, ad.grad, bd.grad)], NAMES, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sharing, shape", [("channel", (0, 3)), ("channel", (2, 3, 0)), ("layer", (0,))])
def test_empty_inputs_give_empty_outputs_and_zero_parameter_gradients(device, sharing, shape):
    module = activation(f"rational(sharing={sharing})")
    with kernel_device(device) as dev:
        got = run(module.to(dev), torch.empty(shape, device=dev), torch.empty(shape, device=dev))
    assert got[0].shape == shape and got[1].shape == shape
    assert all(p.abs().sum() == 0 for p in got[2:])


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_module_is_one_triton_node_forward_and_backward(device):
    module = activation("rational(num=3,den=2,sharing=channel)")
    x = input_with((2, 3, 4, 4), TAILS)
    g = torch.randn(x.shape)
    ref = float64(module, x, g)
    fw, bw = [], []
    torch._dynamo.reset()
    with kernel_device(device) as dev:
        compiled = torch.compile(module.to(dev), backend=graphs(fw, bw), fullgraph=True)
        got = run(compiled, x.to(dev), g.to(dev))
    assert fw == [{torch.ops.actlab_triton.rational_fwd.default}]
    assert bw == [{torch.ops.actlab_triton.rational_bwd.default, operator.getitem}]
    assert_match(got, ref, NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
def test_opcheck_passes_for_the_forward_and_the_backward(device, channels):
    import actlab.activations.learnable._triton_rational  # noqa: F401 - registers the operators

    with kernel_device(device) as dev:
        a, b = _op_args(3, 2, channels, dev)
        x = input_with((2, 3, 4), TAILS).to(dev)
        utils = ("test_schema", "test_faketensor")
        torch.library.opcheck(torch.ops.actlab_triton.rational_fwd.default, (x, a, b), test_utils=utils)
        torch.library.opcheck(torch.ops.actlab_triton.rational_bwd.default, (torch.randn_like(x), x, a, b),
                              test_utils=utils)
