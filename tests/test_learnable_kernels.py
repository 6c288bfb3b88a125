"""The fused C++ kernels of slaf, spline and rational against their PyTorch references.

The references are the same autograd Functions with the kernels switched off
(``kernels_disabled``); float64 never takes the kernels, so the gradchecks of
``test_learnable`` keep testing the references. Inputs reach beyond every
range (linear tails) and cover the three layouts the kernels walk: long
contiguous runs (conv maps), short runs packed into tiles (small maps) and one
element per channel (dense layers).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from actlab import _cpp
from actlab.activations import Site, make_activation
from actlab.activations.learnable import _kernels
from kernel_helpers import require_built, assert_thread_count_free


SITE = Site(3, "conv")
SPECS = [
    "slaf(degree=4)", "slaf(degree=1)", "slaf(degree=8,basis=chebyshev)", "slaf(degree=16,basis=chebyshev)",
    "slaf(degree=5,basis=legendre)", "slaf(degree=6,basis=hermite)", "slaf(degree=3,basis=fourier)",
    "slaf(degree=4,basis=rbf)", "slaf(degree=3,hybrid=true)", "slaf(degree=2,basis=fourier,hybrid=true)",
    "spline(knots=32)", "spline(knots=200)", "spline(knots=9,order=3)", "spline(knots=150,order=3)",
    "rational", "rational(num=3,den=2)", "rational(num=1,den=1)",
]
SHAPES = {"conv": (3, 3, 9, 10), "small maps": (4, 3, 3, 5), "dense": (7, 3)}


@pytest.fixture(scope="module", autouse=True)
def _built():
    require_built(_kernels.LIBRARY)


def _module(spec: str, sharing: str, seed: int = 0) -> torch.nn.Module:
    spec = f"{spec[:-1]},sharing={sharing})" if "(" in spec else f"{spec}(sharing={sharing})"
    module = make_activation(spec, SITE)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return module


def _input(shape: tuple[int, ...], tails: list[float]) -> torch.Tensor:
    x = 2.5 * torch.randn(shape)
    x.view(-1)[: len(tails)] = torch.tensor(tails)
    return x


def _run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> list[torch.Tensor]:
    """Output, input gradient and parameter gradients of one forward + backward."""
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    y.backward(g)
    return [y.detach(), x.grad] + [p.grad.clone() for p in module.parameters()]


def _assert_match(got: list[torch.Tensor], ref: list[torch.Tensor], rtol: float = 2e-5) -> None:
    for name, a, b in zip(["output", "grad_input", *("grad_param%d" % i for i in range(9))], got, ref):
        finite = b[torch.isfinite(b)]
        scale = float(finite.abs().max()) if finite.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * max(scale, 1e-3), equal_nan=True, msg=name)


@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("spec", SPECS)
def test_kernels_match_the_reference_with_beyond_range_tails(spec, sharing, layout):
    module = _module(spec, sharing)
    x = _input(SHAPES[layout], [-40.0, -9.0, -3.7, 3.7, 9.0, 40.0, 0.0])
    g = torch.randn(x.shape)
    assert _kernels.usable(x)
    got = _run(module, x, g)
    with _cpp.kernels_disabled():
        assert not _kernels.usable(x)
        ref = _run(module, x, g)
    _assert_match(got, ref)


@pytest.mark.parametrize("spec, far", [("slaf(degree=3,basis=fourier)", 300.0),
                                       ("slaf(degree=6,basis=legendre,hybrid=true)", 1e4), ("rational", 1e4)])
def test_kernels_are_accurate_far_out_against_float64(spec, far):
    # Far out the float32 reference loses digits itself (it rounds the Fourier
    # phase pi k z / 2), so the kernels are held to float64. Fourier stops at 300:
    # beyond, rounding z = x / range to float32 alone moves the phase by 1e-4.
    module = _module(spec, "channel")
    x = _input((5, 3, 8), [-far, -far / 10, -33.3, 77.7, far / 10, far])
    g = torch.randn(x.shape)
    got = _run(module, x, g)
    ref = [t.float() for t in _run(module.double(), x.double(), g.double())]
    _assert_match(got, ref, rtol=1e-4)


@pytest.mark.parametrize("spec", ["slaf(degree=4)", "slaf(degree=5,basis=chebyshev,hybrid=true)", "rational"])
def test_nan_inputs_propagate_like_the_reference(spec):
    module = _module(spec, "channel")
    x = _input((4, 3, 6), [float("nan"), 1.0, -2.0])
    g = torch.randn(x.shape)
    got = _run(module, x, g)
    with _cpp.kernels_disabled():
        ref = _run(module, x, g)
    assert torch.isnan(got[0].view(-1)[0]) and torch.isfinite(got[0].view(-1)[1:]).all()
    _assert_match(got, ref)


@pytest.mark.parametrize("spec", ["slaf(degree=8,basis=chebyshev)", "spline(knots=32)", "spline(order=3)", "rational"])
def test_parameter_gradients_do_not_depend_on_the_thread_count(spec):
    module = _module(spec, "layer")
    x, g = _input((6, 3, 40, 40), [-9.0, 9.0]), torch.randn(6, 3, 40, 40)
    assert_thread_count_free(lambda: _run(module, x, g))


@pytest.mark.parametrize("spec", ["spline(knots=16)", "spline(knots=8,order=3)"])
def test_double_backward_takes_the_differentiable_reference(spec):
    # The kernels' backward is not differentiable, so create_graph=True must take
    # the reference (slaf's and rational's references use in-place ops and do
    # not support double backward at all; the spline's does).
    module = _module(spec, "channel")
    x, g = _input((4, 3, 7), [-9.0, 9.0]), torch.randn(4, 3, 7)

    def penalty_grads() -> list[torch.Tensor]:
        xr = x.clone().requires_grad_(True)
        module.zero_grad(set_to_none=True)
        (gx,) = torch.autograd.grad((module(xr) * g).sum(), xr, create_graph=True)
        gx.pow(2).sum().backward()
        return [p.grad.clone() for p in module.parameters()]

    got = penalty_grads()
    with _cpp.kernels_disabled():
        ref = penalty_grads()
    _assert_match(got, ref)


def test_float64_strided_and_disabled_calls_take_the_reference():
    x = torch.randn(4, 3, 5)
    assert _kernels.usable(x)
    assert not _kernels.usable(x.double())
    assert not _kernels.usable(x.transpose(1, 2))
    assert not _kernels.usable(x, torch.zeros(3, dtype=torch.float64))
    with _cpp.kernels_disabled():
        assert not _kernels.usable(x)
    assert _cpp.kernels_enabled()


def test_strided_input_gives_the_same_result_as_its_contiguous_copy():
    module = _module("slaf(degree=5,basis=legendre)", "channel")
    x = torch.randn(4, 6, 3).transpose(1, 2)  # (4, 3, 6), not contiguous: reference path
    g = torch.randn(x.shape)
    _assert_match(_run(module, x, g), _run(module, x.contiguous(), g))


@pytest.mark.parametrize("value, enabled", [(None, True), ("1", True), ("0", False), (" OFF ", False),
                                            ("false", False), ("no", False), ("yes", True)])
def test_the_environment_switch_reads_zero_false_off_no_as_disabled(value, enabled):
    assert _cpp.env_enables(value) is enabled


def test_a_failed_build_warns_once_and_reports_the_compiler_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    source = tmp_path / "broken.cpp"
    source.write_text("int main( { return 0; }\n")
    library = _cpp.CppLibrary("actlab_test_broken", [source])
    with pytest.warns(RuntimeWarning, match="error:"):
        assert library.load() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert library.load() is False
    assert "error:" in library.error and "\n" not in library.error


def test_compiled_module_uses_the_kernels_without_graph_breaks():
    module = _module("rational(num=3,den=2)", "channel")
    x, g = _input((4, 3, 5, 5), [-9.0, 9.0]), torch.randn(4, 3, 5, 5)
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    got = _run(compiled, x, g)
    _assert_match(got, _run(module, x, g), rtol=1e-6)
