"""The compressed modules' Triton kernels (``actlab_triton::pwl_lookup``, ``cubic_lookup``) against the
float64 module and the float32 formula: a lookup table and a cubic spline, each test run for both."""

import copy

import pytest
import torch
from torch import nn
from triton_helpers import DEVICES, kernel_device

from actlab import _cpp
from actlab.compress import _kernel, _triton_path
from actlab.compress.fit import make_module
from actlab.compress.modules import CubicActivation, PWLActivation
from actlab.compress.target import Target

INF, NAN = float("inf"), float("nan")
SPECIAL = torch.tensor([NAN, INF, -INF, 1e3, -1e3, 1e30, -1e30])  # 1e38 * inv_h would overflow float32
KINDS = ["pwl", "cubic"]


def _module(kind, channels, knots, seed=1):
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(channels, generator=g) * 2 - 3
    hi = lo + 1 + torch.rand(channels, generator=g) * 3
    if kind == "pwl":
        return PWLActivation(torch.randn(channels, knots, generator=g), lo, hi)
    return CubicActivation(torch.randn(channels, knots - 1, 4, generator=g), lo, hi)


def _flat_tails(kind):
    """Channel 0 flat below the range, channel 1 above it, channel 2 on both sides."""
    if kind == "pwl":
        values = [[1.0, 1.0, 2.0, 4.0], [0.0, 1.0, 2.0, 2.0], [3.0, 3.0, -1.0, -1.0]]
        return PWLActivation(torch.tensor(values), 0.0, 3.0)
    # the end slopes are c1 of the first segment and 3 c3 + 2 c2 + c1 of the last
    flat_lo, flat_hi, sloped = [1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, -1.0], [0.5, 1.0, -2.0, 1.0]
    return CubicActivation(torch.tensor([[flat_lo, sloped], [sloped, flat_hi], [flat_lo, flat_hi]]), 0.0, 2.0)


def _input(shape, scale=4.0, seed=2):
    """Inputs over the range and far beyond it, with NaN and +-inf among them."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale
    flat = x.view(-1)
    flat[: min(flat.numel(), len(SPECIAL))] = SPECIAL[: flat.numel()]
    return flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))].view(shape)


def _float64(module, x):
    """The module's output in float64 (which never takes a kernel) and the float64 input that requires grad."""
    xd = x.detach().double().requires_grad_()
    return copy.deepcopy(module).double()(xd), xd


def _formula(module, x):
    """The float32 formula on the CPU (training mode: the lookup table's eager formula, not its C++ kernel)."""
    with torch.no_grad():
        return copy.deepcopy(module).train()(x)


def _dispatch(module, x):
    if isinstance(module, PWLActivation):
        return _triton_path.pwl(x, *module._kernel_args)
    return _triton_path.cubic(x, module.coef, module.lo, module.hi, module.clamps)


def _spy(monkeypatch):
    """Record whether each module call took the Triton kernel (the C++ kernel off for the interpreter's tensors)."""
    taken = []
    for name in ("pwl", "cubic"):
        real = getattr(_triton_path, name)
        monkeypatch.setattr(_triton_path, name, lambda *a, real=real: taken.append((y := real(*a)) is not None) or y)
    monkeypatch.setattr(_kernel, "preferred", lambda: False)
    return taken


def _close(actual, expected):
    torch.testing.assert_close(actual.detach().cpu().double(), expected.detach(), rtol=1e-5, atol=1e-5, equal_nan=True)


def _eval_on_kernel(module, x, device, monkeypatch):
    """The eval output on ``device``, asserting that it took the Triton kernel and is close to the float64 module's."""
    y64, _ = _float64(module, x)
    taken = _spy(monkeypatch)
    with kernel_device(device) as dev:
        y = module.to(dev).eval()(x.to(dev)).cpu()
    assert taken == [True]
    _close(y, y64)
    return y


LAYOUTS = [(1, (7, 13)), (1, (2, 1, 5, 3)), (1, ()), (3, (2, 3, 5, 7)), (3, (37, 3)), (70, (9, 70))]
LAYOUT_IDS = ["shared", "shared-conv", "shared-scalar", "conv", "dense", "dense-two-column-blocks"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels,shape", LAYOUTS, ids=LAYOUT_IDS)
def test_triton_kernel_matches_the_float64_module_and_the_formula_bit_for_bit(device, kind, channels, shape,
                                                                               monkeypatch):
    module = _module(kind, channels, 9)
    x = _input(shape)
    formula = _formula(module, x)
    y = _eval_on_kernel(module, x, device, monkeypatch)
    torch.testing.assert_close(y, formula, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_flat_tails_give_their_value_at_infinity_and_nan_stays_nan(device, kind, monkeypatch):
    module = _flat_tails(kind)
    x = torch.tensor([-INF, INF, NAN, -1e30, 1e30, -5.0, 8.0, 1.5])[:, None].expand(-1, 3).contiguous()
    y = _eval_on_kernel(module, x, device, monkeypatch)
    assert y[0, [0, 2]].isfinite().all() and y[1, [1, 2]].isfinite().all() and y[2].isnan().all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", ["shared", "conv", "flat"])
def test_training_input_gradient_is_the_autograd_of_the_float64_module(device, kind, layout, monkeypatch):
    module = {"shared": lambda: _module(kind, 1, 17), "conv": lambda: _module(kind, 3, 9),
              "flat": lambda: _flat_tails(kind)}[layout]().train()
    x = _input((3, 3, 4, 5) if module.channels > 1 else (11, 7))
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    y64, x64 = _float64(module, x)
    y64.backward(g.double())
    y64_sum, x64_sum = _float64(module, x)
    y64_sum.sum().backward()
    taken = _spy(monkeypatch)
    with kernel_device(device) as dev:
        xt = x.to(dev, copy=True).requires_grad_()
        y = module.to(dev)(xt)
        y.backward(g.to(dev))
        module.eval()
        xe = x.to(dev, copy=True).requires_grad_()
        module(xe).sum().backward()  # eval with an input that requires grad; sum's gradient is not contiguous
    assert taken == [True, True]
    _close(y, y64)
    _close(xt.grad, x64.grad)
    _close(xe.grad, x64_sum.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_module_built_by_the_compression_pipeline_with_flat_tails_takes_the_kernel(device, kind, monkeypatch):
    module = make_module(Target(nn.Tanh(), 1), torch.tensor([-3.0]), torch.tensor([3.0]), kind, 16,
                         tails=torch.tensor([[0.0, 0.0]]))
    x = _input((5, 4, 6), scale=6.0)
    y = _eval_on_kernel(module, x, device, monkeypatch)
    assert y.isinf().sum() == 0  # tanh's flat tails hold +-inf near +-1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels,shape", [(1, (0,)), (3, (0, 3, 4)), (3, (2, 3, 0))],
                         ids=["shared", "conv", "no-space"])
def test_empty_inputs_give_empty_outputs_and_gradients(device, kind, channels, shape):
    module = _module(kind, channels, 5).train()
    with kernel_device(device) as dev:
        x = torch.empty(shape, device=dev, requires_grad=True)
        y = module.to(dev)(x)
        y.sum().backward()
    assert y.shape == shape and x.grad.shape == shape


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the module's channel checks, constant in a trace
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_half_inputs_take_the_kernel_in_float32_and_other_inputs_keep_the_formula(device, kind):
    module = _module(kind, 3, 9)
    x = _input((4, 3, 5))
    with kernel_device(device) as dev:
        module.to(dev).train()
        xd = x.to(dev)
        torch.testing.assert_close(module(xd.bfloat16()), module(xd.bfloat16().float()).bfloat16(), equal_nan=True)
        assert _dispatch(module, xd) is not None
        for other in (xd.double(), xd.transpose(0, 2).contiguous().transpose(0, 2), xd[:, :2].contiguous()):
            assert _dispatch(module, other) is None
        with _cpp.kernels_disabled():
            assert _dispatch(module, xd) is None
        with pytest.warns(DeprecationWarning):  # torch.jit.trace is deprecated, and still ONNX's legacy exporter
            traced = torch.jit.trace(module, xd, check_trace=False)
        assert "actlab_triton" not in str(traced.graph)
    assert _dispatch(module.cpu(), x) is None  # a plain CPU call


def _graphs(calls):
    from torch._dynamo.backends.registry import lookup_backend

    def backend(gm, inputs):
        # getattr nodes read tensor attributes (x.is_cpu) and are dropped: every computation is the operator
        calls.append([n.target for n in gm.graph.nodes if n.op == "call_function" and n.target is not getattr])
        return lookup_backend("aot_eager")(gm, inputs)

    return backend


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_module_is_one_node_under_torch_compile_forward_and_backward(device, kind):
    module = _module(kind, 3, 9)
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
    assert calls == [[getattr(torch.ops.actlab_triton, f"{kind}_lookup")]]
    _close(y, y64)
    _close(xt.grad, x64.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", KINDS)
def test_opcheck_passes_for_the_forward_and_the_backward(device, kind):
    import actlab.compress._triton_cubic  # noqa: F401 - registers the operators
    import actlab.compress._triton_pwl  # noqa: F401

    module = _flat_tails(kind)
    x = torch.linspace(-9.0, 12.0, 18).reshape(2, 3, 3)  # beyond both ends; opcheck compares without NaN
    with kernel_device(device) as dev:
        module.to(dev)
        tables = module._kernel_args if kind == "pwl" else (module.coef, module.lo, module.hi, module.clamps)
        xd = x.to(dev, copy=True).requires_grad_()
        ops = getattr(torch.ops.actlab_triton, f"{kind}_lookup"), getattr(torch.ops.actlab_triton, f"{kind}_lookup_bwd")
        torch.library.opcheck(ops[0].default, (xd, *tables))
        torch.library.opcheck(ops[1].default, (torch.randn(x.shape, device=dev), xd.detach(), *tables))
