"""subnet's Triton kernels (``actlab_triton::subnet_fwd`` / ``subnet_bwd``) against the float64 reference.

The reference is the same module in float64, which never takes a kernel (its
broadcast path, with the limits at +-inf from ``Subnet.limits``). tanh and relu
units, 1 to 64 of them, layer and channel sharing run through the module in the
three layouts of :func:`actlab._triton.tiles` (conv maps, dense columns, one flat
column) and odd sizes, so that ``SubnetFn``'s own calls reach the kernels; the
inputs reach far beyond the fitted range, NaN stays NaN and +-inf gives the
limit where the sum meets inf - inf or 0 * inf.
"""

from __future__ import annotations

import operator

import pytest
import torch
from triton_helpers import (DEVICES, activation, assert_match, float64, graphs, input_with, kernel_device, on_kernels,
                            run)


pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")  # numpy, in the interpreter

INF, NAN = float("inf"), float("nan")
TAILS = [-1e4, -40.0, -9.0, -3.7, 3.7, 9.0, 40.0, 1e4, 0.0, 1e-6]
SPECS = ["subnet(hidden=8)", "subnet(hidden=8,inner=relu,sharing=channel)", "subnet(hidden=5,sharing=channel)"]
# (channels, shape): conv maps (one channel per column), dense (channels side by side), odd sizes
LAYOUTS = {"conv": (3, (2, 3, 5, 7)), "dense": (3, (37, 3)), "odd conv": (3, (2, 3, 3, 37)),
           "odd dense": (70, (9, 70))}
PARAMS = ("w_in", "b_in", "w_out", "b_out")  # the kernel's; depth 1 leaves w_hidden and b_hidden empty
NAMES = ["output", "grad_input", "grad_w_in", "grad_b_in", "grad_w_out", "grad_b_out"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS)
def test_triton_subnet_matches_the_float64_module_with_far_tails(device, spec, monkeypatch):
    module = activation(spec)
    x = input_with((2, 3, 5, 7), TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch, PARAMS), float64(module, x, g, PARAMS), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_triton_subnet_matches_the_float64_module_in_every_layout_and_odd_size(device, layout, monkeypatch):
    channels, shape = LAYOUTS[layout]
    module = activation("subnet(hidden=2,sharing=channel)", channels)
    x = input_with(shape, TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch, PARAMS), float64(module, x, g, PARAMS), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(1031,), (2, 1, 3, 5), ()], ids=["two programs", "any shape", "0-d"])
def test_triton_subnet_with_layer_sharing_takes_any_shape(device, shape, monkeypatch):
    module = activation("subnet(hidden=3,inner=relu)")
    x = input_with(shape, TAILS)
    g = torch.randn(x.shape)
    assert_match(on_kernels(module, x, g, device, monkeypatch, PARAMS), float64(module, x, g, PARAMS), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS)
def test_triton_subnet_puts_nan_inf_and_huge_inputs_where_the_reference_does(device, spec, monkeypatch):
    special = [NAN, INF, -INF, 1e30, -1e30, 1e8, -1e8, 0.0, 3.5]
    module = activation(spec)
    x = input_with((4, 3, 7), special)
    g = torch.randn(x.shape)
    g.view(-1)[: len(special)] = 0.0  # the parameter gradients stay finite (no 0 * inf), so they are compared too
    got = on_kernels(module, x, g, device, monkeypatch, PARAMS)
    assert torch.isnan(got[0].view(-1)[0]) and not got[0].view(-1)[1:].isnan().any()
    assert_match(got, float64(module, x, g, PARAMS), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_infinite_inputs_give_each_channels_limit_where_the_sum_meets_inf_minus_inf(device, inner, monkeypatch):
    # Channel 0: a unit with w_in = 0 (0 * inf); channel 1: relu units of both output signs (inf - inf),
    # flat towards +inf (slope 1 - 0.5 * 2 = 0); channel 2 as perturbed.
    module = activation(f"subnet(hidden=4,inner={inner},sharing=channel)")
    with torch.no_grad():
        module.w_in[0, 1] = 0.0
        module.w_in[1] = torch.tensor([1.0, 2.0, -1.0, 0.5])
        module.w_out[1] = torch.tensor([1.0, -0.5, 0.7, 0.0])
    x = torch.tensor([INF, -INF, 2.0]).repeat(5, 3, 1)
    g = torch.randn(x.shape)
    got = on_kernels(module, x, g, device, monkeypatch, PARAMS)
    ref = float64(module, x, g, PARAMS)
    assert not got[0].isnan().any()
    assert_match(got[:2], ref[:2], NAMES[:2])


@pytest.mark.parametrize("device", DEVICES)
def test_triton_tanh_is_within_2e_6_of_tanh_and_saturates_to_exactly_one(device):
    x = torch.cat([torch.linspace(-12.0, 12.0, 2001), torch.logspace(-30, 0, 301), -torch.logspace(-30, 0, 301),
                   torch.tensor([INF, -INF, NAN, 0.0, 9.5, -9.5, 1e30])])
    ones = torch.ones(1, 1)
    with kernel_device(device) as dev:
        args = (ones.to(dev), torch.zeros(1, 1, device=dev), ones.to(dev), torch.zeros(1, device=dev), 0)
        y = torch.ops.actlab_triton.subnet_fwd(x.to(dev), *args).cpu()
        gx = torch.ops.actlab_triton.subnet_bwd(torch.ones_like(x).to(dev), x.to(dev), *args)[0].cpu()
    exact = torch.tanh(x.double())
    fin = torch.isfinite(x)
    assert float((y.double() - exact)[fin].abs().max()) <= 2e-6
    assert float((gx.double() - (1 - exact**2))[fin].abs().max()) <= 4e-6
    small = (x.abs() < 1e-3) & (x != 0)  # the odd rational keeps the relative accuracy near 0
    assert float(((y.double() - exact)[small] / exact[small]).abs().max()) <= 1e-6
    assert y[-7:-5].tolist() == [1.0, -1.0] and y[-5].isnan() and y[-4:].tolist() == [0.0, 1.0, -1.0, 1.0]
    assert gx[-7:-5].tolist() == [0.0, 0.0] and gx[-5].isnan()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("inner, hidden", [("tanh", 1), ("tanh", 13), ("relu", 13), ("relu", 64)])
def test_triton_subnet_ops_match_the_float64_module_up_to_64_units(device, inner, hidden):
    module = activation(f"subnet(hidden={hidden},inner={inner},sharing=channel)")
    x = input_with((7, 3), TAILS + [NAN])
    g = torch.randn(x.shape)
    act = 0 if inner == "tanh" else 1
    with kernel_device(device) as dev:
        params = [getattr(module, p).detach().to(dev) for p in PARAMS]
        y = torch.ops.actlab_triton.subnet_fwd(x.to(dev), *params, act)
        grads = torch.ops.actlab_triton.subnet_bwd(g.to(dev), x.to(dev), *params, act)
    assert_match([y.cpu(), *(t.cpu() for t in grads)], float64(module, x, g, PARAMS), NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sharing, shape", [("channel", (0, 3)), ("channel", (2, 3, 0)), ("layer", (0,))])
def test_empty_inputs_give_empty_outputs_and_zero_parameter_gradients(device, sharing, shape):
    module = activation(f"subnet(hidden=8,sharing={sharing})")
    with kernel_device(device) as dev:
        got = run(module.to(dev), torch.empty(shape, device=dev), torch.empty(shape, device=dev), PARAMS)
    assert got[0].shape == shape and got[1].shape == shape
    assert all(p.abs().sum() == 0 for p in got[2:])


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_module_is_one_triton_node_forward_and_backward(device):
    module = activation("subnet(hidden=2,sharing=channel)")
    x = input_with((2, 3, 4, 4), TAILS)
    g = torch.randn(x.shape)
    ref = float64(module, x, g, PARAMS)
    fw, bw = [], []
    torch._dynamo.reset()
    with kernel_device(device) as dev:
        compiled = torch.compile(module.to(dev), backend=graphs(fw, bw), fullgraph=True)
        got = run(compiled, x.to(dev), g.to(dev), PARAMS)
    assert fw == [{torch.ops.actlab_triton.subnet_fwd.default}]
    assert bw == [{torch.ops.actlab_triton.subnet_bwd.default, operator.getitem}]
    assert_match(got, ref, NAMES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("act, channels", [(0, 3), (1, 1)])
def test_opcheck_passes_for_the_forward_and_the_backward(device, act, channels):
    import actlab.activations.learnable._triton_subnet  # noqa: F401 - registers the operators

    gen = torch.Generator().manual_seed(3)
    with kernel_device(device) as dev:
        params = [torch.randn(shape, generator=gen).to(dev) for shape in [(channels, 2)] * 3 + [(channels,)]]
        x = input_with((2, 3, 4), TAILS).to(dev)
        utils = ("test_schema", "test_faketensor")
        torch.library.opcheck(torch.ops.actlab_triton.subnet_fwd.default, (x, *params, act), test_utils=utils)
        torch.library.opcheck(torch.ops.actlab_triton.subnet_bwd.default, (torch.randn_like(x), x, *params, act),
                              test_utils=utils)
