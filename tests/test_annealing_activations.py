"""theta_relu and anneal(f) against closed forms, the trainer protocols and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import actlab.annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.activations import Site, make_activation
from actlab.errors import ActlabError

QUARTER_PI = math.pi / 4


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(64, 5) * 3


@pytest.mark.parametrize("spec", ["theta_relu", "theta_relu(theta=0.7853981633974483)", "theta_relu(theta_deg=45)"])
def test_theta_quarter_pi_is_exactly_the_identity(spec, x):
    assert torch.equal(make_activation(spec)(x), x)


@pytest.mark.parametrize("spec", ["theta_relu(theta=0)", "theta_relu(theta_deg=0)"])
def test_theta_zero_is_exactly_relu(spec, x):
    assert torch.equal(make_activation(spec)(x), torch.relu(x))


@pytest.mark.parametrize("deg", [5.0, 20.0, 37.5])
def test_theta_relu_is_a_leaky_relu_with_slope_tan_theta(deg, x):
    out = make_activation(f"theta_relu(theta_deg={deg})")(x)
    torch.testing.assert_close(out, F.leaky_relu(x, math.tan(math.radians(deg))))


def test_trainable_quarter_pi_is_exactly_the_identity_when_raw_saturates(x):
    act = make_activation("theta_relu(mode=trainable)")
    with torch.no_grad():
        act.raw.fill_(50.0)  # sigmoid = 1 in float32
    assert torch.equal(act(x), x)


@pytest.mark.parametrize("sharing", ["layer", "channel", "neuron"])
def test_trainable_theta_stays_in_range_under_huge_gradients(sharing):
    torch.manual_seed(1)
    act = make_activation(f"theta_relu(mode=trainable,sharing={sharing})", Site(6, "conv"))
    opt = torch.optim.SGD(act.parameters(), lr=1e6)
    x = torch.randn(4, 6, 3, 3)
    for sign in (1.0, -1.0, 1.0, -1.0, 1.0):
        opt.zero_grad()
        (sign * 1e6 * act(x).sum()).backward()
        opt.step()
        theta = act.theta
        assert not torch.isnan(theta).any()
        assert (theta >= 0).all() and (theta <= QUARTER_PI).all()
        assert torch.isfinite(act(x)).all()


def test_trainable_per_neuron_shapes_and_diagnostics():
    act = make_activation("theta_relu(mode=trainable,sharing=neuron,theta_deg=30,lr=0.05)", Site(7))
    assert act.raw.shape == (7,)
    assert act.raw.actlab_lr == 0.05
    assert act(torch.randn(3, 7)).shape == (3, 7)
    conv = make_activation("theta_relu(mode=trainable,sharing=channel)", Site(4, "conv"))
    assert conv(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)
    assert act.scalars()["theta_deg"] == pytest.approx(30, rel=1e-5)
    assert {"theta", "theta_deg_min", "theta_deg_max"} <= set(act.scalars())
    hist = act.histograms()["theta_deg"]
    assert hist.shape == (7,) and torch.allclose(hist, torch.full((7,), 30.0))
    xs = torch.linspace(-2, 2, 9)
    assert act.curve(xs).shape == (7, 9)
    torch.testing.assert_close(act.curve(xs)[3], F.leaky_relu(xs, math.tan(math.radians(30))))


def test_per_channel_theta_applies_along_dim_1():
    act = make_activation("theta_relu(mode=trainable,sharing=channel)", Site(3, "conv"))
    with torch.no_grad():
        act.raw.copy_(torch.tensor([-30.0, 0.0, 30.0]))  # theta = 0, pi/8, pi/4
    x = -torch.ones(1, 3, 2, 2)
    slopes = act(x)[0, :, 0, 0]
    torch.testing.assert_close(slopes, -torch.tensor([0.0, math.tan(math.pi / 8), 1.0]))


def test_trainable_shared_has_one_parameter_with_own_lr():
    act = make_activation("theta_relu(mode=trainable)", Site(16))
    assert act.raw.numel() == 1 and act.raw.actlab_lr == 0.01
    assert act.curve(torch.linspace(-1, 1, 5)).shape == (5,)


def test_trainable_gradcheck_float64_and_closed_form_theta_gradient():
    act = make_activation("theta_relu(mode=trainable,sharing=channel,theta_deg=20)", Site(3)).double()
    x = torch.tensor([[-1.5, 0.7, -0.2], [2.0, -0.4, 1.1]], dtype=torch.float64, requires_grad=True)
    raw = act.raw.detach().clone().requires_grad_(True)

    def f(x, raw):
        return torch.func.functional_call(act, {"raw": raw}, (x,))

    assert torch.autograd.gradcheck(f, (x, raw))
    f(x, raw).sum().backward()
    # d/draw sum max(x tan(theta), x) = sum_{x<0} x * sec^2(theta) * pi/4 * s (1 - s)
    s = torch.sigmoid(raw.detach())
    theta = QUARTER_PI * s
    expected = x.detach().clamp(max=0).sum(0) / torch.cos(theta) ** 2 * QUARTER_PI * s * (1 - s)
    torch.testing.assert_close(raw.grad, expected)


def test_scheduled_theta_follows_set_progress(x):
    act = make_activation("theta_relu(mode=scheduled,schedule=linear(start=0.7853981633974483,end=0,steps=10))")
    assert torch.equal(act(x), x)  # step 0 before any call
    act.set_progress(5, 0.5)
    assert act.theta == pytest.approx(QUARTER_PI / 2)
    assert act.scalars()["theta_deg"] == pytest.approx(22.5)
    act.set_progress(10, 1.0)
    assert act.theta == 0.0 and torch.equal(act(x), torch.relu(x))


def test_scheduled_per_epoch_moves_only_at_epoch_boundaries():
    act = make_activation("theta_relu(schedule=linear(start=0.7853981633974483,end=0,epochs=4),update=epoch)")
    seen = []
    for step in range(12):  # 4 steps per epoch
        act.set_progress(step, step / 4)
        seen.append(act.theta)
    assert seen == [QUARTER_PI] * 4 + [QUARTER_PI * 0.75] * 4 + [QUARTER_PI * 0.5] * 4


def test_scheduled_state_survives_a_module_state_dict_round_trip():
    spec = "theta_relu(schedule=cosine(start=0.7853981633974483,end=0,steps=20))"
    act = make_activation(spec)
    act.set_progress(7, 0.7)
    fresh = make_activation(spec)
    fresh.load_state_dict(act.state_dict())
    assert fresh.theta == act.theta != QUARTER_PI


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("theta_relu(mode=cooled)", "Did you mean 'scheduled'"),
        ("theta_relu(theta=0.1,theta_deg=5)", "not both"),
        ("theta_relu(mode=fixed,lr=0.1)", "lr does not apply to mode=fixed"),
        ("theta_relu(mode=trainable,sharing=pixel)", "Valid names: channel, layer, neuron"),
        ("theta_relu(mode=trainable,theta=1.0)", "starts in \\[0, pi/4\\]"),
        ("theta_relu(schedule=linear(start=1,end=0))", "epochs=N or steps=N"),
        ("theta_relu(schedule=linear(start=1,end=0,epochs=1),update=batch)", "unknown update"),
        ("anneal(schedule=linear(start=0,end=1,epochs=1))", "anneal needs base"),
    ],
)
def test_bad_theta_relu_and_anneal_specs(spec, message):
    with pytest.raises(ActlabError, match=message) as info:
        make_activation(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("base", ["gelu", "tanh", "elu(alpha=0.5)", "softplus", "max(x,sigmoid(x))"])
def test_anneal_is_identity_at_t0_and_base_at_t1(base, x):
    act = make_activation(f"anneal(base={base},schedule=linear(start=0,end=1,steps=4))")
    f = make_activation(base)
    assert torch.equal(act(x), x)
    act.set_progress(2, 0.5)
    torch.testing.assert_close(act(x), 0.5 * x + 0.5 * f(x))
    assert act.scalars() == {"t": 0.5}
    act.set_progress(4, 1.0)
    assert torch.equal(act(x), f(x))


def test_anneal_of_theta_relu_keeps_learned_parameters_trainable():
    act = make_activation(
        "anneal(base=theta_relu(mode=trainable,sharing=neuron),schedule=linear(start=0,end=1,steps=2))", Site(5)
    )
    assert [p.shape for p in act.parameters()] == [(5,)]
    act.set_progress(1, 0.5)
    act(torch.randn(3, 5)).sum().backward()
    assert act.base.raw.grad is not None and act.base.raw.grad.abs().sum() > 0
    assert act.curve(torch.linspace(-1, 1, 4)).shape == (5, 4)


def test_anneal_gradcheck_float64_mid_schedule():
    act = make_activation("anneal(base=gelu,schedule=cosine(start=0,end=1,steps=10))")
    act.set_progress(3, 0.3)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(act, (x,))


def test_anneal_unknown_base_names_the_activation():
    with pytest.raises(ActlabError, match="Did you mean 'gelu'"):
        make_activation("anneal(base=gleu)")

