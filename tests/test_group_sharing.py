"""Group sharing (``sharing=group, groups=G``, KAT's GR-KAN) for every learnable family.

The reference of a grouped module is a channel-shared one whose per-channel parameters are
its groups' rows repeated C/G times: the same outputs, and the gradient of a group's
parameters is the sum of its channels' gradients. With the C++ kernels on and off.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn
from torch.func import functional_call

from actlab import _cpp
from actlab import convert
from actlab.activations import Site, make_activation
from actlab.activations.learnable import _kernels
from actlab.compress import compress_model
from actlab.errors import SpecError
from actlab.models import count_parameters

from family_helpers import learnable_families
from kernel_helpers import require_built
from triton_helpers import kernel_device, needs_triton

FAMILIES = learnable_families()
# options that take another code path: hybrid's ReLU weight, cubic tables, hidden layers
VARIANTS = FAMILIES + ["slaf(degree=3,basis=chebyshev,hybrid=true)", "spline(knots=8,order=3)",
                       "subnet(hidden=3,depth=2)"]
C, G = 6, 2


def spec_with(spec: str, **options: object) -> str:
    extra = ",".join(f"{k}={v}" for k, v in options.items())
    return f"{spec[:-1]},{extra})" if spec.endswith(")") else f"{spec}({extra})"


def grouped(spec: str, groups: int = G, site: Site | None = Site(C), **options: object) -> nn.Module:
    return make_activation(spec_with(spec, sharing="group", groups=groups, **options), site)


def perturb(module: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def repeated(module: nn.Module, spec: str, width: int = C, **options: object) -> nn.Module:
    """The channel-shared module whose per-channel tensors are ``module``'s groups repeated."""
    state = module.state_dict()
    for name, dim in module.unit_tensors.items():
        if name in state:
            state[name] = state[name].repeat_interleave(width // state[name].shape[dim], dim)
    reference = make_activation(spec_with(spec, sharing="channel", **options), Site(width))
    reference.load_state_dict(state)
    return reference


def summed_over_groups(grad: torch.Tensor, dim: int, groups: int) -> torch.Tensor:
    return grad.unflatten(dim, (groups, -1)).sum(dim + 1)


@pytest.fixture(params=["kernels on", "kernels off"])
def kernels(request):
    if request.param == "kernels off":
        with _cpp.kernels_disabled():
            yield
        return
    require_built(_kernels.LIBRARY)
    yield


def _check_against_repeated(module, reference, x, groups=G):
    """``module`` (kernels as the caller set them) against ``reference`` on the PyTorch path."""
    x = x.requires_grad_(True)
    y = module(x)
    go = torch.randn_like(y)
    names = list(dict(module.named_parameters()))
    got = torch.autograd.grad(y, [x, *module.parameters()], go, allow_unused=True)
    x_ref = x.detach().requires_grad_(True)
    with _cpp.kernels_disabled():
        y_ref = reference(x_ref)
        want = torch.autograd.grad(y_ref, [x_ref, *reference.parameters()], go, allow_unused=True)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(got[0], want[0])
    for name, g, g_ref in zip(names, got[1:], want[1:]):
        assert (g is None) == (g_ref is None), name  # None: subnet's empty hidden layers at depth 1
        if g is not None:
            expected = summed_over_groups(g_ref, module.unit_tensors[name], groups)
            torch.testing.assert_close(g, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", VARIANTS)
def test_a_grouped_module_equals_channel_sharing_with_its_groups_repeated_in_values_and_gradients(spec, kernels):
    module = perturb(grouped(spec))
    assert all(p.shape[module.unit_tensors[n]] == G for n, p in module.named_parameters())
    _check_against_repeated(module, repeated(module, spec), torch.randn(4, C, 5))


def fused_ops(module: nn.Module, x: torch.Tensor, namespace: str) -> set[str]:
    """The ``namespace`` operators that a forward and backward of ``module`` ran."""
    with torch.profiler.profile() as prof:
        module(x.requires_grad_(True)).sum().backward()
    return {e.name for e in prof.events() if e.name.startswith(namespace + "::")}


@pytest.mark.parametrize("spec", FAMILIES)
def test_a_grouped_module_runs_the_fused_cpp_kernels(spec):
    require_built(_kernels.LIBRARY)
    ops = fused_ops(perturb(grouped(spec)), torch.randn(2, C, 3), "actlab_learnable")
    assert any(op.endswith("_fwd") for op in ops) and any(op.endswith("_bwd") for op in ops)


@pytest.mark.parametrize("spec", FAMILIES)
def test_a_dense_input_and_a_channels_last_input_match_the_moved_channels_first_one(spec, kernels):
    module = perturb(grouped(spec))
    _check_against_repeated(module, repeated(module, spec), torch.randn(7, C))
    last = grouped(spec, dim=-1)
    last.load_state_dict(module.state_dict())
    x = torch.randn(3, 4, C)
    torch.testing.assert_close(last(x), module(x.movedim(-1, 1)).movedim(1, -1))
    lazy = grouped(spec, site=None, dim=-1)
    lazy.load_state_dict(module.state_dict())
    torch.testing.assert_close(lazy(x), last(x))
    assert lazy.n_units == C and all(p.shape[lazy.unit_tensors[n]] == G for n, p in lazy.named_parameters())


@pytest.mark.parametrize("spec", FAMILIES)
def test_groups_equal_to_the_channels_is_channel_sharing(spec):
    module, channel = grouped(spec, groups=C), make_activation(spec_with(spec, sharing="channel"), Site(C))
    x = torch.randn(3, C, 4)
    torch.testing.assert_close(module(x), channel(x))  # the same initial fit
    perturb(module)
    channel.load_state_dict(module.state_dict())
    torch.testing.assert_close(module(x), channel(x))


@pytest.mark.parametrize("spec", FAMILIES)
def test_one_group_is_layer_sharing_any_shape_one_curve_and_its_parameter_count(spec):
    one, layer = grouped(spec, groups=1), make_activation(spec, Site(C))
    x = torch.randn(2, 3, 5, 7)  # no channel dim of width C
    torch.testing.assert_close(one(x), layer(x))
    assert one.curve(torch.linspace(-2, 2, 9)).shape == (9,)
    assert count_parameters(one) == count_parameters(layer)
    assert count_parameters(grouped(spec, groups=3)) == 3 * count_parameters(layer)


@pytest.mark.parametrize("spec", FAMILIES)
def test_the_initial_fit_holds_for_every_group_and_curve_gives_one_row_per_group(spec):
    module, layer = grouped(spec, groups=3), make_activation(spec, Site(C))
    assert module.fit_error() == layer.fit_error()
    xs = torch.linspace(-2.5, 2.5, 11)
    curve = module.curve(xs)
    assert curve.shape == (3, 11)
    torch.testing.assert_close(curve, layer.curve(xs).expand(3, -1))
    perturb(module)
    torch.testing.assert_close(module.curve(xs), repeated(module, spec).curve(xs)[:: C // 3])


@pytest.mark.parametrize("spec", FAMILIES)
def test_state_dicts_hold_one_row_per_group_and_round_trip_into_sited_and_lazy_modules(spec):
    module = perturb(grouped(spec))
    state = module.state_dict()
    assert all(state[n].shape[d] == G for n, d in module.unit_tensors.items() if n in state)
    x = torch.randn(3, C, 4)
    for fresh in (grouped(spec), grouped(spec, site=None)):
        fresh.load_state_dict(state)
        torch.testing.assert_close(fresh(x), module(x))


@pytest.mark.parametrize(("spec", "site", "message"), [
    ("rational(sharing=group,groups=4)", Site(6), "groups=4 does not divide 6 channels"),
    ("spline(sharing=group)", Site(6), "sharing=group needs groups=G"),
    ("slaf(sharing=group,groups=0)", Site(6), "sharing=group needs groups=G"),
    ("subnet(sharing=group,groups=true)", Site(6), "sharing=group needs groups=G"),
    ("slaf(groups=2)", Site(6), "groups=2 needs sharing=group"),
    ("spline(sharing=channel,groups=3)", Site(6), "groups=3 needs sharing=group"),
])
def test_bad_groups_are_one_line_spec_errors(spec, site, message):
    with pytest.raises(SpecError, match=message) as info:
        make_activation(spec, site)
    assert "\n" not in str(info.value)


def test_a_lazy_module_checks_its_groups_against_the_first_input():
    module = grouped("rational", groups=4, site=None, dim=-1)
    with pytest.raises(SpecError, match="groups=4 does not divide 6 channels"):
        module(torch.randn(2, 3, 6))


@pytest.mark.parametrize("spec", ["slaf(degree=3,standardize=true)",
                                  "spline(knots=8,calibrate=true,calibrate_batches=1)"])
def test_a_group_s_statistics_are_those_of_a_layer_module_on_the_group_s_channels(spec):
    """slaf's standardisation and spline's calibration pool a group's channels with the batch."""
    module = perturb(grouped(spec))
    layers = [make_activation(spec) for _ in range(G)]
    for g, layer in enumerate(layers):
        layer.load_state_dict({k: v[g: g + 1] if k in module.unit_tensors else v
                               for k, v in module.state_dict().items()})
    x = 1.5 * torch.randn(8, C, 3) + 0.5
    y = module(x)
    width = C // G
    for g, layer in enumerate(layers):
        torch.testing.assert_close(y[:, g * width:(g + 1) * width], layer(x[:, g * width:(g + 1) * width]))
        for name in module.unit_tensors:
            if name in dict(module.named_buffers()):
                torch.testing.assert_close(getattr(module, name)[g: g + 1], getattr(layer, name))
    module.eval()
    torch.testing.assert_close(module(x), repeated(module, spec).eval()(x))


def test_a_grouped_rational_passes_gradcheck_in_float64():
    module = perturb(grouped("rational(num=3,den=2)", groups=3)).double()
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    x = 2.0 * torch.randn(2, C, 3, dtype=torch.float64)
    x[0, :, 0] = torch.tensor([-9.0, 7.5, 40.0, -33.0, 0.0, 1e-3], dtype=torch.float64)

    def f(x, *ps):
        return functional_call(module, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), *params), eps=1e-6, atol=1e-5)


def test_a_grouped_subnet_is_torchscript_scriptable():
    module = perturb(grouped("subnet(hidden=3,depth=2)"))
    x = torch.randn(2, C, 4)
    torch.testing.assert_close(torch.jit.script(module)(x), module(x))


def test_convert_with_group_sharing_gives_channels_last_sites_g_sets_and_compresses():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, C), nn.ReLU(), nn.Linear(C, 2))
    x = torch.randn(16, 5, 4)
    new, sites = convert(model, "spline(knots=8,groups=3)", x[:1], sharing="group")
    act = new[1]
    assert act.channel_dim == -1 and act.n_units == C and act.values.shape == (3, 8)
    assert sites[0].parameters == 3 * 8
    perturb(act)
    compressed, report = compress_model(new, knots=64, calibration=x)
    assert report[0].channels == C
    with torch.no_grad():
        assert float((compressed(x) - new(x)).abs().max()) < 1e-2


TRITON_OPS = {"slaf": ["slaf_fwd", "slaf_bwd"], "spline": ["linear_spline_fwd", "linear_spline_bwd"],
              "rational": ["rational_fwd", "rational_bwd"], "subnet": ["subnet_fwd", "subnet_bwd"]}
TRITON_MODULES = [f"actlab.activations.learnable._triton_{f}" for f in ("slaf", "spline", "rational", "subnet")]


@needs_triton
@pytest.mark.parametrize("spec", FAMILIES)
def test_the_triton_kernels_see_per_channel_parameters_of_a_grouped_module(spec):
    if not all(importlib.util.find_spec(m) for m in TRITON_MODULES):
        pytest.skip("a Triton kernel module is not written yet")
    assert _kernels.TRITON.load(), _kernels.TRITON.error
    with kernel_device("interpret") as device:
        module = perturb(grouped(spec)).to(device)
        with torch.profiler.profile() as prof:  # the reference runs with the kernels off
            _check_against_repeated(module, repeated(module, spec).to(device), torch.randn(2, C, 3, device=device))
    assert {e.name for e in prof.events()} >= {f"actlab_triton::{op}" for op in TRITON_OPS[spec]}
