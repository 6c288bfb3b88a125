"""The fused C++ kernel of subnet (depth 1, tanh or relu) against the broadcast PyTorch path.

The reference is the same module with the kernels switched off
(``kernels_disabled``). The kernel is float32 only, so float64 gradchecks test
the reference (the broadcast path here, ``test_learnable`` for the module) and
the kernel is held to float32 closeness. Shapes cover the layouts the kernels
walk: long contiguous runs (conv maps), short runs packed into tiles (small
maps) and one element per channel (dense layers).
"""

from __future__ import annotations

import pytest
import torch

from actlab import _cpp
from actlab.activations import Site, make_activation
from actlab.activations.learnable import _autograd_subnet, _kernels
from kernel_helpers import require_built, assert_thread_count_free

SITE = Site(3, "conv")
SHAPES = {"conv": (3, 3, 9, 10), "small maps": (4, 3, 3, 5), "dense": (7, 3)}
TAILS = [-40.0, -9.0, -3.7, 3.7, 9.0, 40.0, 0.0, 1e-6]


@pytest.fixture(scope="module", autouse=True)
def _built():
    require_built(_kernels.LIBRARY)


def _module(inner: str, hidden: int, sharing: str, depth: int = 1, seed: int = 0) -> torch.nn.Module:
    module = make_activation(f"subnet(hidden={hidden},inner={inner},depth={depth},sharing={sharing})", SITE)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def _input(shape: tuple[int, ...], tails: list[float] = TAILS) -> torch.Tensor:
    x = 2.5 * torch.randn(shape)
    x.view(-1)[: len(tails)] = torch.tensor(tails[: x.numel()])
    return x


def _run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """Output, input gradient and the gradients of w_in, b_in, w_out, b_out."""
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    y.backward(g)
    return [y.detach(), x.grad] + [p.grad.clone() for p in (module.w_in, module.b_in, module.w_out, module.b_out)]


def _reference(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    with _cpp.kernels_disabled():
        return _run(module, x, g)


def _assert_match(got: list[torch.Tensor], ref: list[torch.Tensor], rtol: float = 2e-5) -> None:
    for name, a, b in zip(["output", "grad_input", "grad_w_in", "grad_b_in", "grad_w_out", "grad_b_out"], got, ref):
        finite = b[torch.isfinite(b)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * max(scale, 1e-3), equal_nan=True, msg=name)


def _takes_kernel(module: torch.nn.Module, x: torch.Tensor) -> bool:
    y = module(x.clone().requires_grad_(True))
    return type(y.grad_fn).__name__ == "SubnetFnBackward"


@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("inner", ["tanh", "relu"])
@pytest.mark.parametrize("hidden", [1, 5, 8, 13, 64])
def test_kernel_output_and_gradients_match_the_broadcast_path(hidden, inner, sharing, layout):
    module = _module(inner, hidden, sharing)
    x = _input(SHAPES[layout])
    g = torch.randn(x.shape)
    assert _takes_kernel(module, x)
    _assert_match(_run(module, x, g), _reference(module, x, g))


@pytest.mark.parametrize("shape", [(), (37,), (5, 2, 3, 4, 6)])
def test_layer_sharing_takes_any_shape(shape):
    module = _module("tanh", 6, "layer")
    x = torch.randn(shape)
    g = torch.randn(shape)
    _assert_match(_run(module, x, g), _reference(module, x, g))


def test_tanh_is_within_2e_6_of_torch_tanh_everywhere():
    module = make_activation("subnet(hidden=1)")
    with torch.no_grad():
        module.w_in.fill_(1.0), module.b_in.zero_(), module.w_out.fill_(1.0), module.b_out.zero_()
    x = torch.cat([torch.linspace(-20.0, 20.0, 400_001), torch.logspace(-30, 1, 3001), -torch.logspace(-30, 1, 3001)])
    y, gx = _run(module, x, torch.ones_like(x))[:2]
    exact = torch.tanh(x.double())
    assert float((y.double() - exact).abs().max()) <= 2e-6
    assert float((gx.double() - (1 - exact**2)).abs().max()) <= 4e-6
    small = (x.abs() < 1e-3) & (x != 0)  # near 0 the odd rational keeps the relative accuracy too
    assert float(((y.double() - exact)[small] / exact[small]).abs().max()) <= 1e-6
    assert torch.equal(y[x == 0], torch.zeros_like(y[x == 0]))


@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_nan_and_infinite_inputs_behave_like_the_reference(inner, sharing):
    module = _module(inner, 8, sharing)
    x = _input((4, 3, 6), [float("nan"), float("inf"), -float("inf"), 1.0, -2.0])
    g = torch.randn(x.shape)
    got = _run(module, x, g)
    assert torch.isnan(got[0].view(-1)[0]) and torch.isfinite(got[0].view(-1)[3:]).all()
    _assert_match(got, _reference(module, x, g))


@pytest.mark.parametrize("sharing, shape", [("layer", (0,)), ("layer", (0, 3, 4)), ("channel", (0, 3, 4)),
                                            ("channel", (2, 3, 0))])
def test_empty_inputs_give_empty_outputs_and_zero_parameter_gradients(sharing, shape):
    module = _module("tanh", 8, sharing)
    x, g = torch.randn(shape), torch.randn(shape)
    got = _run(module, x, g)
    assert got[0].shape == shape and got[1].shape == shape
    assert all(not t.any() for t in got[2:])
    _assert_match(got, _reference(module, x, g))


@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_results_do_not_depend_on_the_thread_count(inner):
    module = _module(inner, 13, "layer")
    x, g = _input((6, 3, 40, 40)), torch.randn(6, 3, 40, 40)
    assert_thread_count_free(lambda: _run(module, x, g))


def test_backward_saves_only_the_input_and_the_parameters():
    module = _module("tanh", 32, "channel")
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    saved: list[int] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
        module(x)
    assert sorted(saved, reverse=True)[:2] == [x.numel(), 3 * 32]


def test_disabled_kernels_and_other_configurations_take_the_broadcast_path():
    x = torch.randn(4, 3, 5)
    assert _takes_kernel(_module("tanh", 8, "channel"), x)
    with _cpp.kernels_disabled():
        assert not _takes_kernel(_module("tanh", 8, "channel"), x)
    for module in (_module("tanh", 8, "channel", depth=2), _module("sigmoid", 8, "channel"),
                   _module("relu", _autograd_subnet.MAX_HIDDEN + 1, "layer")):
        assert not _takes_kernel(module, x)
    assert not _takes_kernel(_module("tanh", 8, "channel"), x.double())
    assert not _takes_kernel(_module("tanh", 8, "channel"), x.transpose(0, 2))


def test_a_wrong_channel_count_is_the_reference_error():
    with pytest.raises(ValueError, match="expected input with 3 channels"):
        _module("tanh", 8, "channel")(torch.randn(4, 5, 2))


@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_kernels_switched_off_before_backward_give_the_same_gradients(inner):
    module = _module(inner, 8, "channel")
    x, g = _input((4, 3, 7)), torch.randn(4, 3, 7)
    xr = x.clone().requires_grad_(True)
    y = module(xr)
    with _cpp.kernels_disabled():
        y.backward(g)
    got = [y.detach(), xr.grad] + [p.grad for p in (module.w_in, module.b_in, module.w_out, module.b_out)]
    _assert_match(got, _reference(module, x, g))


@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_double_backward_takes_the_differentiable_reference(inner):
    module = _module(inner, 8, "channel")
    x, g = _input((4, 3, 7)), torch.randn(4, 3, 7)

    def penalty_grads() -> list[torch.Tensor]:
        xr = x.clone().requires_grad_(True)
        module.zero_grad(set_to_none=True)
        (gx,) = torch.autograd.grad((module(xr) * g).sum(), xr, create_graph=True)
        gx.pow(2).sum().backward()
        # relu' is piecewise constant: b_in may get no gradient at all (None) or zeros.
        params = (module.w_in, module.b_in, module.w_out)
        return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]

    got = penalty_grads()
    with _cpp.kernels_disabled():
        ref = penalty_grads()
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-5 * float(b.abs().max()))


@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_reference_gradients_equal_autograd_of_the_broadcast_path_in_float64(inner, sharing):
    module = _module(inner, 5, sharing).double()
    x, g = _input((3, 3, 4)).double(), torch.randn(3, 3, 4, dtype=torch.float64)
    params = (module.w_in, module.b_in, module.w_out, module.b_out)
    xr = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(module(xr), (xr, *params), g)
    got = _autograd_subnet.reference_grads(g, x, *(p.detach() for p in params), _autograd_subnet.ACTS[inner])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("inner", ["tanh", "relu"])
def test_the_broadcast_path_passes_gradcheck_in_float64(inner):
    module = _module(inner, 5, "channel").double()
    x = _input((2, 3, 4)).double().requires_grad_(True)
    params = [module.w_in, module.b_in, module.w_out, module.b_out]
    assert torch.autograd.gradcheck(lambda x, *p: module(x), (x, *params), eps=1e-6, atol=1e-5)


def test_compiled_module_matches_the_eager_module_without_graph_breaks():
    module = _module("tanh", 8, "channel")
    x, g = _input((4, 3, 5, 5)), torch.randn(4, 3, 5, 5)
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    _assert_match(_run(compiled, x, g), _run(module, x, g))
