"""The lookup table's Triton kernel (``actlab_triton::pwl_lookup``) against the float64 module and the formula."""

import copy

import pytest
import torch
from torch import nn
from triton_helpers import DEVICES, kernel_device

from actlab import _cpp
from actlab.compress import _fastpath, _kernel, _triton_path
from actlab.compress.fit import make_module
from actlab.compress.modules import PWLActivation
from actlab.compress.target import Target

INF, NAN = float("inf"), float("nan")
SPECIAL = torch.tensor([NAN, INF, -INF, 1e3, -1e3, 1e30, -1e30])  # 1e38 * inv_h would overflow float32


def _table(channels, knots, seed=1):
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(channels, generator=g) * 2 - 3
    return PWLActivation(torch.randn(channels, knots, generator=g), lo, lo + 1 + torch.rand(channels, generator=g) * 3)


def _flat_tails():
    """Channel 0 flat below the range, channel 1 above it, channel 2 on both sides."""
    return PWLActivation(torch.tensor([[1.0, 1.0, 2.0, 4.0], [0.0, 1.0, 2.0, 2.0], [3.0, 3.0, -1.0, -1.0]]), 0.0, 3.0)


def _input(shape, scale=4.0, seed=2):
    """Inputs over the range and far beyond it, with NaN and +-inf among them."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    flat = x.view(-1)
    flat[: min(flat.numel(), len(SPECIAL))] = SPECIAL[: flat.numel()]
    return flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))].view(shape)


def _float64(module, x):
    """The module's output in float64 (which never takes a kernel) and the float64 input that requires grad."""
    ref = copy.deepcopy(module).double()
    xd = x.detach().double().requires_grad_()
    y = ref(xd)
    return y, xd


def _no_formula(monkeypatch):
    """Fail any call that reaches the formula (eager or compiled) or the C++ kernel: the Triton op must take it."""
    def boom(*args, **kwargs):
        raise AssertionError("the call did not take the Triton kernel")

    for name in ("pwl_lookup", "lookup"):
        monkeypatch.setattr(_fastpath, name, boom)
    monkeypatch.setattr(_kernel, "preferred", lambda: False)  # the interpreter's CPU tensors, not the C++ kernel


LAYOUTS = [(1, (7, 13)), (1, (2, 1, 5, 3)), (1, ()), (3, (2, 3, 5, 7)), (3, (37, 3)), (70, (9, 70))]
LAYOUT_IDS = ["shared", "shared-conv", "shared-scalar", "conv", "dense", "dense-two-column-blocks"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels,shape", LAYOUTS, ids=LAYOUT_IDS)
def test_triton_table_matches_the_float64_module_and_the_formula_bit_for_bit(device, channels, shape, monkeypatch):
    module = _table(channels, 9)
    x = _input(shape)
    y64, _ = _float64(module, x)
    formula = _fastpath.pwl_lookup(x, *module._tables(x))
    _no_formula(monkeypatch)
    with kernel_device(device) as dev:
        y = module.to(dev).eval()(x.to(dev)).cpu()
    torch.testing.assert_close(y.double(), y64.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(y, formula, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
def test_flat_tails_give_their_value_at_infinity_and_nan_stays_nan(device, monkeypatch):
    module = _flat_tails()
    x = torch.tensor([-INF, INF, NAN, -1e38, 1e38, -5.0, 8.0, 1.5])[:, None].expand(-1, 3).contiguous()
    y64, _ = _float64(module, x)
    _no_formula(monkeypatch)
    with kernel_device(device) as dev:
        y = module.to(dev).eval()(x.to(dev)).cpu()
    torch.testing.assert_close(y.double(), y64.detach(), rtol=1e-6, atol=0, equal_nan=True)
    assert y[0].tolist()[0] == 1.0 and y[1].tolist()[1:] == [2.0, -1.0] and y[2].isnan().all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("make", [lambda: _table(1, 17), lambda: _table(3, 9), _flat_tails], ids=["shared", "conv", "flat"])
def test_training_input_gradient_is_the_autograd_of_the_float64_module(device, make, monkeypatch):
    module = make().train()
    x = _input((3, 3, 4, 5) if module.channels > 1 else (11, 7))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    y64, x64 = _float64(module, x)
    y64.backward(g.double())
    y64_sum, x64_sum = _float64(module, x)
    y64_sum.sum().backward()
    _no_formula(monkeypatch)
    with kernel_device(device) as dev:
        xt = x.to(dev, copy=True).requires_grad_()
        y = module.to(dev)(xt)
        y.backward(g.to(dev))
        module.eval()
        xe = x.to(dev, copy=True).requires_grad_()
        module(xe).sum().backward()  # eval with an input that requires grad; sum's gradient is not contiguous
    torch.testing.assert_close(y.detach().cpu().double(), y64.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(xt.grad.cpu().double(), x64.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xe.grad.cpu().double(), x64_sum.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_a_table_built_by_the_compression_pipeline_with_flat_tails_takes_the_kernel(device, monkeypatch):
    module = make_module(Target(nn.Tanh(), 1), torch.tensor([-3.0]), torch.tensor([3.0]), "pwl", 16,
                         tails=torch.tensor([[0.0, 0.0]]))
    x = _input((5, 4, 6), scale=6.0)
    y64, _ = _float64(module, x)
    _no_formula(monkeypatch)
    with kernel_device(device) as dev:
        y = module.to(dev).eval()(x.to(dev)).cpu()
    torch.testing.assert_close(y.double(), y64.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)
    assert y.isinf().sum() == 0  # tanh's flat tails hold +-inf at +-1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels,shape", [(1, (0,)), (3, (0, 3, 4)), (3, (2, 3, 0))], ids=["shared", "conv", "no-space"])
def test_empty_inputs_give_empty_outputs_and_gradients(device, channels, shape):
    module = _table(channels, 5).train()
    with kernel_device(device) as dev:
        x = torch.empty(shape, device=dev, requires_grad=True)
        y = module.to(dev)(x)
        y.sum().backward()
    assert y.shape == shape and x.grad.shape == shape


@pytest.mark.parametrize("device", DEVICES)
def test_half_inputs_and_inputs_the_kernel_does_not_take_keep_the_formula(device):
    module = _table(3, 9)
    x = _input((4, 3, 5))
    with kernel_device(device) as dev:
        module.to(dev).train()
        xd = x.to(dev)
        torch.testing.assert_close(module(xd.bfloat16()), module(xd.bfloat16().float()).bfloat16(), equal_nan=True)
        assert _triton_path.pwl(xd, *module._kernel_args) is not None
        for other in (xd.double(), xd.transpose(0, 2).contiguous().transpose(0, 2), xd[:, :2].contiguous()):
            assert _triton_path.pwl(other, *module._kernel_args) is None
        with _cpp.kernels_disabled():
            assert _triton_path.pwl(xd, *module._kernel_args) is None
        traced = torch.jit.trace(module, xd, check_trace=False)
        assert "actlab_triton" not in str(traced.graph)
    assert _triton_path.pwl(x, *module.cpu()._kernel_args) is None  # a plain CPU call


def _graphs(calls):
    from torch._dynamo.backends.registry import lookup_backend

    def backend(gm, inputs):
        # getattr nodes read tensor attributes (x.is_cpu) and are dropped: every computation is the operator
        calls.append([n.target for n in gm.graph.nodes if n.op == "call_function" and n.target is not getattr])
        return lookup_backend("aot_eager")(gm, inputs)

    return backend


@pytest.mark.parametrize("device", DEVICES)
def test_module_is_one_node_under_torch_compile_forward_and_backward(device):
    module = _table(3, 9)
    x = _input((2, 3, 4, 4))
    y64, x64 = _float64(module.train(), x)
    y64.sum().backward()
    calls = []
    torch._dynamo.reset()
    with kernel_device(device) as dev:
        compiled = torch.compile(module.to(dev), backend=_graphs(calls), fullgraph=True)
        xt = x.to(dev, copy=True).requires_grad_()
        y = compiled(xt)
        y.sum().backward()
    assert calls == [[torch.ops.actlab_triton.pwl_lookup]]
    torch.testing.assert_close(y.detach().cpu().double(), y64.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)
    torch.testing.assert_close(xt.grad.cpu().double(), x64.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_passes_for_the_forward_and_the_backward(device):
    import actlab.compress._triton_pwl  # noqa: F401 - registers the operators

    module = _flat_tails()
    x = torch.linspace(-9.0, 12.0, 18).reshape(2, 3, 3)  # beyond both ends; opcheck compares without NaN
    with kernel_device(device) as dev:
        tab, lo, inv_h = (t.to(dev) for t in module._kernel_args)
        xd = x.to(dev, copy=True).requires_grad_()
        torch.library.opcheck(torch.ops.actlab_triton.pwl_lookup.default, (xd, tab, lo, inv_h))
        g = torch.randn(x.shape, device=dev)
        torch.library.opcheck(torch.ops.actlab_triton.pwl_lookup_bwd.default, (g, xd.detach(), tab, lo, inv_h))
