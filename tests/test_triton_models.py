"""Whole models on the Triton kernels: a CNN training step per learnable family, as on the C++ kernels.

The kernels run in Triton's interpreter on CPU tensors (or on CUDA where present);
the references are the same model in float64 (which never takes a kernel) and,
on the CPU, the C++ kernels. A step of the converted model is also traced by
``torch.compile`` with ``fullgraph=True``: the Triton operators are single nodes.
"""

from __future__ import annotations

import copy

import pytest
import torch

from actlab import _cpp
from actlab.activations.learnable import _kernels
from actlab.models import make_model
from triton_helpers import DEVICES, kernel_device

SPECS = ["slaf(degree=4,basis=chebyshev,sharing=channel)", "slaf(degree=3,basis=fourier)",
         "slaf(degree=4,basis=rbf,hybrid=true)", "spline(knots=16,sharing=channel)", "spline(knots=9,order=3)",
         "rational(sharing=channel)", "subnet(hidden=8)", "subnet(hidden=4,inner=relu,sharing=channel)"]
SHAPE = (1, 12, 12)


def _model(spec: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = make_model("cnn(channels=4)", SHAPE, 3, spec)
    with torch.no_grad():  # away from the fitted init, so every parameter's gradient is exercised
        for name, p in model.named_parameters():
            if name.startswith("acts."):
                p.add_(0.05 * torch.randn_like(p))
    return model


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.detach().clone() for p in model.parameters() if p.numel()]  # subnet's depth-1 stacks are empty


def _batch(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return 2 * torch.randn((3, *SHAPE), generator=g).to(device), torch.tensor([0, 1, 2], device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", SPECS)
def test_a_cnn_training_step_on_the_triton_kernels_matches_float64(spec, device):
    model = _model(spec)
    reference = copy.deepcopy(model).double()
    x64, y = _batch(torch.device("cpu"))
    loss64, grads64 = _step(reference, x64.double(), y)
    with kernel_device(device) as dev:
        model = model.to(dev)
        x, y = _batch(dev)
        calls = []
        original = _kernels._ops
        _kernels._ops = lambda t: calls.append(t.device.type) or original(t)
        try:
            loss, grads = _step(model, x, y)
        finally:
            _kernels._ops = original
    assert calls and all(c == dev.type for c in calls), "the Triton operators were not called"
    torch.testing.assert_close(loss.cpu().double(), loss64, rtol=1e-5, atol=1e-6)
    for g, g64 in zip(grads, grads64, strict=True):
        torch.testing.assert_close(g.cpu().double(), g64, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("spec", ["slaf(degree=4,basis=chebyshev,sharing=channel)", "spline(knots=9,order=3)",
                                  "rational(sharing=channel)"])
def test_the_triton_and_cpp_kernels_give_the_same_step(spec):
    if not _kernels.LIBRARY.load():
        pytest.skip(f"the C++ kernels did not build: {_kernels.LIBRARY.error}")
    model = _model(spec)
    x, y = _batch(torch.device("cpu"))
    cpp_loss, cpp_grads = _step(model, x, y)
    with kernel_device("interpret"):
        loss, grads = _step(model, x, y)
    torch.testing.assert_close(loss, cpp_loss, rtol=1e-6, atol=1e-6)
    for g, ref in zip(grads, cpp_grads, strict=True):
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_a_compiled_step_on_the_triton_kernels_has_no_graph_break(device):
    import torch._dynamo

    model = _model("slaf(degree=4,basis=chebyshev,sharing=channel)")
    x64, y = _batch(torch.device("cpu"))
    expected, _ = _step(copy.deepcopy(model).double(), x64.double(), y)
    with kernel_device(device) as dev:
        model = model.to(dev)
        x, y = _batch(dev)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        loss = torch.nn.functional.cross_entropy(compiled(x), y)
        loss.backward()
    torch.testing.assert_close(loss.detach().cpu().double(), expected, rtol=1e-5, atol=1e-6)
    assert all(p.grad is not None for p in model.parameters() if p.numel())


def test_kernels_off_keeps_cuda_calls_on_the_reference():
    with kernel_device("interpret"), _cpp.kernels_disabled():
        assert not _kernels.usable(torch.zeros(4), torch.zeros(1, 2))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", ["slaf(degree=4,sharing=channel)", "spline(knots=16)", "rational", "subnet(hidden=8)"])
def test_bfloat16_under_autocast_runs_the_triton_kernels_in_float32(spec, device):
    from actlab.activations import Site, make_activation

    module = make_activation(spec, Site(3, "conv"))
    x = torch.randn(2, 3, 5, 7).to(torch.bfloat16)
    expected = module.double()(x.double()).to(torch.bfloat16)
    module = module.float()
    with kernel_device(device) as dev:
        module, xd = module.to(dev), x.to(dev).requires_grad_()
        calls, original = [], _kernels._ops
        _kernels._ops = lambda t: calls.append(t.dtype) or original(t)
        try:
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                y = module(xd)
            y.float().sum().backward()
        finally:
            _kernels._ops = original
    assert y.dtype == torch.bfloat16 and xd.grad.dtype == torch.bfloat16
    assert calls and set(calls) == {torch.float32}
    torch.testing.assert_close(y.cpu(), expected, rtol=1e-2, atol=1e-2)
