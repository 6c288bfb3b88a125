"""Per-channel sharing along any dim: channels last (B, T, D), widths taken from the first input."""

import copy
import pickle

import pytest
import torch
from torch import nn

from actlab import load, make_activation, save
from actlab.activations.sites import Site
from actlab.compress import compress_model
from actlab.errors import SpecError

FAMILIES = ["slaf(degree=4)", "slaf(degree=3,basis=chebyshev,hybrid=true)", "spline(knots=16)",
            "spline(knots=12,order=3)", "rational", "subnet(hidden=4)", "subnet(hidden=4,depth=2)"]


def _per_channel(spec: str, dim: int, site: Site | None = None) -> nn.Module:
    return make_activation(f"{spec[:-1]},sharing=channel,dim={dim})" if spec.endswith(")")
                           else f"{spec}(sharing=channel,dim={dim})", site)


def _perturb(module: nn.Module) -> None:
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("spec", FAMILIES)
def test_the_issue_s_channels_last_input_works_with_and_without_a_site(spec):
    x = torch.randn(2, 5, 8)
    assert _per_channel(spec, -1, Site(8))(x).shape == (2, 5, 8)
    lazy = _per_channel(spec, -1)
    assert lazy(x).shape == (2, 5, 8) and lazy.n_units == 8


@pytest.mark.parametrize("spec", FAMILIES)
def test_channels_last_equals_channels_first_on_the_moved_input_in_values_and_gradients(spec):
    last, first = _per_channel(spec, -1, Site(8)), _per_channel(spec, 1, Site(8))
    _perturb(last)
    first.load_state_dict(last.state_dict())
    x = torch.randn(3, 5, 8, dtype=torch.float32, requires_grad=True)
    y_last = last(x)
    y_first = first(x.movedim(-1, 1)).movedim(1, -1)
    torch.testing.assert_close(y_last, y_first)
    g = torch.randn_like(y_last)
    grads_last = torch.autograd.grad(y_last, [x, *last.parameters()], g, allow_unused=True)
    grads_first = torch.autograd.grad(y_first, [x, *first.parameters()], g, allow_unused=True)
    for a, b in zip(grads_last, grads_first):  # None: subnet's empty hidden layers at depth 1
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def test_a_channel_dim_in_the_middle_is_moved_and_back():
    module = _per_channel("rational", 2, Site(6))
    _perturb(module)
    x = torch.randn(2, 3, 6, 4)
    ref = _per_channel("rational", 1, Site(6))
    ref.load_state_dict(module.state_dict())
    torch.testing.assert_close(module(x), ref(x.movedim(2, 1)).movedim(1, 2))


@pytest.mark.parametrize("spec", FAMILIES)
def test_an_optimiser_made_before_the_first_input_trains_every_lazy_unit(spec):
    module = _per_channel(spec, -1)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    before = None
    for _ in range(3):
        y = module(torch.randn(4, 7, 8))
        before = before if before is not None else [p.detach().clone() for p in module.parameters()]
        opt.zero_grad()
        (y * torch.arange(8.0)).square().mean().backward()
        opt.step()
    changed = [(p - b).abs().amax(dim=tuple(range(1, p.dim())) if p.dim() > 1 else ()) for p, b in
               zip(module.parameters(), before) if p.shape[0] == 8]
    assert changed and all(bool((c > 0).any()) for c in changed)


def test_a_changed_channel_count_is_a_one_line_error():
    module = _per_channel("rational", -1)
    module(torch.randn(2, 5, 8))
    with pytest.raises(SpecError, match="8 channels along dim -1 but got input of shape \\(2, 5, 7\\)"):
        module(torch.randn(2, 5, 7))


def test_a_lazy_module_takes_its_width_from_a_state_dict():
    trained = _per_channel("spline(knots=16)", -1)
    trained(torch.randn(2, 3, 8))
    _perturb(trained)
    fresh = _per_channel("spline(knots=16)", -1)
    fresh.load_state_dict(trained.state_dict())
    x = torch.randn(4, 3, 8)
    torch.testing.assert_close(fresh(x), trained(x))


def test_a_channels_last_model_compresses_saves_loads_and_keeps_its_outputs(tmp_path):
    torch.manual_seed(0)

    def build() -> nn.Module:
        return nn.Sequential(nn.Linear(6, 8), _per_channel("rational", -1), nn.Linear(8, 3))

    model = build()
    x = torch.randn(32, 5, 6)
    model(x)
    _perturb(model[1])
    new, report = compress_model(model, knots=64, calibration=x)
    assert report[0].channels == 8
    with torch.no_grad():
        assert float((new(x) - model(x)).abs().max()) < 1e-2
        save(new, tmp_path / "m.pt")
        torch.testing.assert_close(load(tmp_path / "m.pt", build)(x), new(x))


@pytest.mark.parametrize("spec", FAMILIES)
def test_lazy_channels_last_modules_pickle_deepcopy_and_save_before_and_after_their_first_input(spec, tmp_path):
    module, x = _per_channel(spec, -1), torch.randn(2, 3, 8)
    before = pickle.loads(pickle.dumps(module))
    assert before.lazy_units
    module(x)
    for clone in (before, pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        torch.testing.assert_close(clone(x), module(x))
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    torch.testing.assert_close(loaded(x), module(x))
    assert loaded.n_units == 8 and loaded.channel_dim == -1
