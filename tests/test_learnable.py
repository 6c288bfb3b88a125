"""The learnable activation families: shared behaviour, parametrised over the registry.

Every family registered from ``actlab.activations.learnable`` is picked up
automatically by ``FAMILIES``; ``VARIANTS`` adds the options that take a
different code path (bases, hybrid, cubic, standardisation, depth).
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from actlab.activations import Site, make_activation
from actlab.errors import ActlabError, UnknownNameError

from family_helpers import learnable_families

FAMILIES = learnable_families()
VARIANTS = [
    "slaf(degree=3)", "slaf(degree=5,basis=chebyshev)", "slaf(degree=4,basis=legendre)",
    "slaf(degree=4,basis=hermite)", "slaf(degree=2,basis=fourier)", "slaf(degree=4,basis=rbf)",
    "slaf(degree=3,hybrid=true)", "slaf(degree=3,standardize=true)", "spline(knots=8)",
    "spline(knots=8,order=3)", "rational(num=3,den=2)", "subnet(hidden=4)", "subnet(hidden=3,depth=2)",
]
SITE = Site(3, "conv")


def with_sharing(spec: str, sharing: str) -> str:
    return f"{spec[:-1]},sharing={sharing})" if "(" in spec else f"{spec}(sharing={sharing})"


def perturbed(spec: str, seed: int = 0) -> torch.nn.Module:
    """A module with per-unit parameters made different from each other."""
    module = make_activation(spec, SITE)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def test_all_four_families_are_registered():
    assert {"slaf", "spline", "rational", "subnet"} <= set(FAMILIES)


@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("spec", FAMILIES + VARIANTS)
def test_gradients_match_finite_differences_beyond_the_range(spec, sharing):
    module = perturbed(with_sharing(spec, sharing)).double()
    g = torch.Generator().manual_seed(1)
    x = 2.5 * torch.randn(2, 3, 5, dtype=torch.float64, generator=g)
    x[0, :, :4] = torch.tensor([-9.0, 7.5, 40.0, -33.0], dtype=torch.float64)  # beyond range and tails
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]

    def f(x, *ps):
        return functional_call(module, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(True), *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("spec", FAMILIES)
def test_channel_sharing_gives_each_channel_its_own_parameters(spec):
    module = make_activation(with_sharing(spec, "channel"), SITE)
    for p in module.parameters():
        assert 3 in p.shape[:2], f"{spec}: parameter of shape {tuple(p.shape)} is not per channel"
    x = torch.randn(4, 3, 5, 5)
    before = module(x).detach()
    with torch.no_grad():
        for p in module.parameters():
            (p[:, 1] if p.shape[0] != 3 else p[1]).add_(0.3)
    after = module(x).detach()
    assert torch.equal(before[:, [0, 2]], after[:, [0, 2]])
    assert not torch.allclose(before[:, 1], after[:, 1])
    assert module.curve(torch.linspace(-2, 2, 7)).shape == (3, 7)


@pytest.mark.parametrize("spec", FAMILIES)
def test_layer_sharing_accepts_any_rank_and_curve_is_one_dimensional(spec):
    module = make_activation(spec)
    for shape in [(5, 4), (2, 3, 4, 4), (2, 3, 2, 2, 2)]:
        x = torch.randn(shape)
        assert module(x).shape == x.shape
    assert module.curve(torch.linspace(-2, 2, 7)).shape == (7,)


@pytest.mark.parametrize("spec", FAMILIES)
def test_channel_sharing_without_a_site_takes_the_width_from_the_first_input(spec):
    module = make_activation(with_sharing(spec, "channel"))
    assert module.n_units == 1 and module.lazy_units
    assert module(torch.randn(2, 6, 3)).shape == (2, 6, 3) and module.n_units == 6


@pytest.mark.parametrize("spec", FAMILIES + ["slaf(degree=16,basis=chebyshev)", "slaf(degree=8,basis=hermite)",
                                             "slaf(basis=fourier)", "slaf(basis=rbf,hybrid=true)",
                                             "spline(order=3)", "subnet(inner=relu)"])
def test_extreme_inputs_stay_finite_in_forward_and_backward(spec):
    module = perturbed(with_sharing(spec, "channel"))
    x = torch.tensor([-1e4, -1e3, -30.0, -1.0, 0.0, 1.0, 30.0, 1e3, 1e4]).reshape(3, 3, 1).expand(3, 3, 3)
    x = x.contiguous().requires_grad_(True)
    y = module(x)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.numel())


@pytest.mark.parametrize("spec", FAMILIES + VARIANTS)
def test_state_dict_round_trip_restores_the_function(spec):
    source = perturbed(with_sharing(spec, "channel"), seed=3)
    target = make_activation(with_sharing(spec, "channel"), SITE)
    target.load_state_dict(source.state_dict())
    x = torch.randn(4, 3, 6)
    source.eval(), target.eval()
    assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("spec", FAMILIES + ["slaf(degree=16,basis=chebyshev)", "slaf(degree=12,basis=legendre)",
                                             "spline(order=3)"])
def test_a_short_training_run_reduces_the_loss(spec):
    torch.manual_seed(0)
    module = make_activation(spec)
    x = torch.linspace(-3, 3, 256).reshape(-1, 1)
    target = torch.sin(2 * x) + 0.3 * x  # far from the ReLU it starts as
    opt = torch.optim.Adam(module.parameters(), lr=0.02)
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = (module(x) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("spec", FAMILIES)
@pytest.mark.parametrize("init", ["relu", "identity", "tanh", "gelu", "leaky_relu(negative_slope=0.2)"])
def test_every_family_starts_close_to_its_init(spec, init):
    module = make_activation(f"{spec}(init={init})")
    err = module.fit_error()
    assert set(err) == {"max_abs", "rms"}
    assert err["rms"] < 0.1, err  # degree-4 polynomials fit tanh on [-3, 3] to rms 0.076
    xs = torch.linspace(-3, 3, 101)
    ref = make_activation(init)(xs.reshape(-1, 1)).reshape(-1)
    assert (module.curve(xs) - ref).abs().max() < err["max_abs"] + 1e-3


@pytest.mark.parametrize(
    "spec, message",
    [
        ("slaf(basis=chebychev)", "Did you mean 'chebyshev'"),
        ("slaf(basis=foo)", "Valid names: chebyshev, fourier, hermite, legendre, monomial, rbf"),
        ("slaf(degree=0)", "degree must be a positive integer"),
        ("slaf(degree=-2)", "degree must be a positive integer"),
        ("slaf(range=0)", "range must be positive"),
        ("spline(knots=-3)", "knots must be an integer >= 3"),
        ("spline(knots=2)", "knots must be an integer >= 3"),
        ("spline(order=3,knots=4)", "knots must be an integer >= 5"),
        ("spline(order=2)", "order must be 1"),
        ("spline(lo=1,hi=-1)", "lo < hi"),
        ("rational(num=0)", "num must be a positive integer"),
        ("subnet(hidden=0)", "hidden must be a positive integer"),
        ("subnet(sharing=channels)", "unknown sharing mode 'channels'. Did you mean 'channel'"),
        ("slaf(init=nope)", "unknown activation"),
        ("spline(init_range=-1)", "init_range must be positive"),
        ("rational(numerator=3)", "unknown parameter of rational"),
    ],
)
def test_bad_specs_raise_one_clear_actlab_error(spec, message):
    with pytest.raises(ActlabError, match=message.replace("(", r"\(").replace("'", "'")) as info:
        make_activation(spec, SITE)
    assert "\n" not in str(info.value)


def test_unknown_basis_is_an_unknown_name_error():
    with pytest.raises(UnknownNameError):
        make_activation("slaf(basis=bessel)")


def test_subnet_is_torchscript_scriptable():
    module = perturbed("subnet(hidden=4,depth=2,sharing=channel)")
    scripted = torch.jit.script(module)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(scripted(x), module(x))


def test_identical_sites_reuse_the_cached_fit():
    a = make_activation("rational(num=4,den=3,init=tanh)", SITE)
    b = make_activation("rational(num=4,den=3,init=tanh,sharing=channel)", SITE)
    assert torch.equal(a.numerator.expand_as(b.numerator), b.numerator)
    assert a.fit_error() == b.fit_error()


@pytest.mark.parametrize("spec", ["slaf(degree=8,basis=chebyshev)", "slaf(hybrid=true,sharing=channel)",
                                  "spline(knots=32)", "spline(order=3,sharing=channel)", "rational"])
def test_lean_kernels_save_only_the_input_for_backward(spec):
    module = make_activation(spec, SITE)
    x = torch.randn(8, 3, 16, 16, requires_grad=True)
    big = []

    def pack(t):
        if t.numel() >= x.numel():
            big.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    assert len(big) == 1 and big[0] is x
