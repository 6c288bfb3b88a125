"""slaf's Triton kernels (``actlab_triton::slaf_fwd`` / ``slaf_bwd``) against the float64 reference.

The reference is the same module (or ``SlafFn``) in float64, which never takes a
kernel. Every basis, degrees 1, 4 and 8, the hybrid form, both sharings and the
three layouts of :func:`actlab._triton.tiles` (conv maps, dense columns, one flat
column) are run through the module, so that the autograd Function's own calls
reach the kernels; the inputs reach far beyond the range (the linear tails), and
NaN and +-inf must come out where the reference puts them.
"""

from __future__ import annotations

import pytest
import torch
from triton_helpers import (DEVICES, activation, assert_match, float64, graphs, input_with, kernel_device, on_kernels,
                            run)

from actlab.activations.learnable import _kernels
from actlab.activations.learnable._autograd import SlafFn
from actlab.activations.learnable.bases import BASES, end_derivatives

INF, NAN = float("inf"), float("nan")
TAILS = [-1e4, -40.0, -9.0, -3.7, 3.7, 9.0, 40.0, 1e4, 0.0]
SPECS = ["slaf(degree=1)", "slaf(degree=4,hybrid=true)", "slaf(degree=4,basis=chebyshev)",
         "slaf(degree=8,basis=chebyshev,hybrid=true)", "slaf(degree=8,basis=legendre)",
         "slaf(degree=4,basis=hermite,hybrid=true)", "slaf(degree=1,basis=fourier)",
         "slaf(degree=4,basis=fourier,hybrid=true)", "slaf(degree=8,basis=rbf)", "slaf(degree=1,basis=rbf,hybrid=true)"]
# (channels, shape): conv maps (one channel per column), dense (channels side by side), odd sizes
LAYOUTS = {"conv": (3, (2, 3, 5, 7)), "dense": (3, (37, 3)), "odd conv": (5, (2, 5, 3, 7)),
           "odd dense": (70, (9, 70))}


NAMES = ["output", "grad_input", "grad_coef", "grad_w"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("spec", SPECS)
def test_triton_slaf_matches_the_float64_module_on_every_basis_with_far_tails(device, spec, sharing, monkeypatch):
    module = activation(spec, sharing=sharing)
    x = input_with((2, 3, 5, 7), TAILS, fourier="fourier" in spec)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("spec", ["slaf(degree=8,basis=hermite,hybrid=true)", "slaf(degree=4,basis=fourier)",
                                  "slaf(degree=4,basis=rbf,hybrid=true)"])
def test_triton_slaf_matches_the_float64_module_in_every_layout_and_odd_size(device, spec, layout, monkeypatch):
    channels, shape = LAYOUTS[layout]
    module = activation(spec, channels, sharing="channel")
    x = input_with(shape, TAILS, fourier="fourier" in spec)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1031,), (2, 1, 3, 5)], ids=["two programs", "any shape"])
def test_triton_slaf_with_layer_sharing_takes_any_shape(device, shape, monkeypatch):
    module = activation("slaf(degree=5,basis=legendre,hybrid=true)", sharing="layer")
    x = input_with(shape, TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch), float64(module, x, g), NAMES)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy on NaN
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", ["slaf(degree=4)", "slaf(degree=8,basis=chebyshev,hybrid=true)",
                                  "slaf(degree=4,basis=fourier,hybrid=true)", "slaf(degree=4,basis=rbf)"])
def test_triton_slaf_puts_nan_and_inf_where_the_reference_does(device, spec, monkeypatch):
    special = [NAN, INF, -INF, 0.0, 3.5, -3.5] + ([] if "fourier" in spec else [1e30, -1e30])
    module = activation(spec, sharing="channel")
    x = input_with((4, 3, 7), special)
    g = torch.randn(x.shape)
    g.view(-1)[: len(special)] = 0.0  # the parameter gradients stay finite, so they are compared too
    got = on_kernels(module, x, g, device, monkeypatch)
    assert torch.isnan(got[0].view(-1)[0])
    assert_match(got, float64(module, x, g), NAMES)


def _ops():
    """``torch.ops.actlab_triton`` with slaf's operators registered (imported here: it needs triton)."""
    import actlab.activations.learnable._triton_slaf  # noqa: F401

    return torch.ops.actlab_triton


def _op_args(basis: str, n: int, channels: int, device, scale: bool, hybrid: bool):
    b = BASES.get(basis)
    coef = torch.randn(channels, n, generator=torch.Generator().manual_seed(3))
    kind, rec = _kernels.slaf_plan(basis, n)
    return (coef.to(device), b.scale(n).float().to(device) if scale else None,
            torch.randn(channels).to(device) if hybrid else None, end_derivatives(b, n).float().to(device),
            list(rec), 1.0 / 3.0, kind)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("basis", BASES.names())
def test_triton_slaf_ops_without_scale_match_slaf_fn_in_float64(device, basis):
    # The module always passes its scale; the op takes None as a = coef.
    n = 2 * 3 + 1 if basis == "fourier" else 4
    x = input_with((6, 3, 4), TAILS, fourier=basis == "fourier")
    g = torch.randn(x.shape)
    with kernel_device(device) as dev:
        coef, _, w, dends, rec, inv_range, kind = _op_args(basis, n, 3, dev, scale=False, hybrid=True)
        y = _ops().slaf_fwd(x.to(dev), coef, None, w, dends, rec, inv_range, kind)
        grads = _ops().slaf_bwd(g.to(dev), x.to(dev), coef, None, w, dends, rec, inv_range, kind)
    xd, cd, wd = (t.detach().cpu().double().requires_grad_() for t in (x, coef, w))
    yd = SlafFn.apply(xd, cd, torch.ones(n, dtype=torch.float64), wd, dends.cpu().double(), inv_range, basis)
    yd.backward(g.double())
    assert_match([y.cpu(), *(t.cpu() for t in grads)], [t.float() for t in (yd.detach(), xd.grad, cd.grad, wd.grad)],
                 NAMES)


@pytest.mark.parametrize("device", DEVICES)
def test_a_flat_tail_gives_its_end_value_at_infinity(device):
    # Per channel, monomials 1 + 2z + z^2 (slope 0 at z = -1) and 1 - 2z + z^2 (slope 0 at z = +1):
    # the flat side gives p(+-1) = 0 at +-inf, not 0 * inf; the other side carries the inf.
    x = torch.tensor([-INF, INF, NAN, -6.0, 6.0])[:, None].expand(-1, 2).contiguous()
    dends = end_derivatives(BASES.get("monomial"), 3).float()
    with kernel_device(device) as dev:
        coef = torch.tensor([[1.0, 2.0, 1.0], [1.0, -2.0, 1.0]], device=dev)
        args = (coef, None, None, dends.to(dev), [1.0, 1.0, 0.0], 1.0 / 3.0, 0)
        y = _ops().slaf_fwd(x.to(dev), *args).cpu()
        gx, gc, gw = _ops().slaf_bwd(torch.ones_like(x).to(dev), x.to(dev), *args)
    assert y[[0, 1, 3, 4]].t().tolist() == [[0.0, INF, 0.0, 8.0], [INF, 0.0, 8.0, 0.0]] and y[2].isnan().all()
    slopes = torch.tensor([[0.0, 4.0, 0.0, 4.0], [-4.0, 0.0, -4.0, 0.0]]) / 3  # p'(zc) / range
    torch.testing.assert_close(gx.cpu()[[0, 1, 3, 4]].t(), slopes)
    assert gw.shape == (0,) and gc.shape == (2, 3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sharing, shape", [("channel", (0, 3)), ("channel", (2, 3, 0)), ("layer", (0,))])
def test_empty_inputs_give_empty_outputs_and_zero_parameter_gradients(device, sharing, shape):
    module = activation("slaf(degree=4,basis=chebyshev,hybrid=true)", sharing=sharing)
    with kernel_device(device) as dev:
        got = run(module.to(dev), torch.empty(shape, device=dev), torch.empty(shape, device=dev))
    assert got[0].shape == shape and got[1].shape == shape
    assert all(p.abs().sum() == 0 for p in got[2:])


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_module_is_one_triton_node_forward_and_backward(device):
    import operator

    module = activation("slaf(degree=4,basis=chebyshev,hybrid=true)", sharing="channel")
    x = input_with((2, 3, 4, 4), TAILS)
    g = torch.randn(x.shape)
    ref = float64(module, x, g)
    fw, bw = [], []
    torch._dynamo.reset()
    with kernel_device(device) as dev:
        compiled = torch.compile(module.to(dev), backend=graphs(fw, bw), fullgraph=True)
        got = run(compiled, x.to(dev), g.to(dev))
    assert fw == [{torch.ops.actlab_triton.slaf_fwd.default}]
    assert bw == [{torch.ops.actlab_triton.slaf_bwd.default, operator.getitem}]
    assert_match(got, ref, NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("basis, hybrid", [("legendre", True), ("fourier", False), ("rbf", True)])
def test_opcheck_passes_for_the_forward_and_the_backward(device, basis, hybrid):
    with kernel_device(device) as dev:
        args = _op_args(basis, 5, 3, dev, scale=True, hybrid=hybrid)
        x = input_with((2, 3, 4), TAILS).to(dev)
        utils = ("test_schema", "test_faketensor")
        torch.library.opcheck(_ops().slaf_fwd.default, (x, *args), test_utils=utils)
        torch.library.opcheck(_ops().slaf_bwd.default, (torch.randn_like(x), x, *args),
                              test_utils=utils)
