"""Schedules against closed forms: start, middle, end, warmup/hold, resume, bad specs."""

from __future__ import annotations

import math

import pytest

import actlab.annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.annealing.schedules import SCHEDULES, make_schedule
from actlab.errors import ActlabError, SpecError, UnknownNameError

S, E = 0.7853981633974483, 0.0

# closed-form shape w(u) of every registered schedule, blend (1 - w) S + w E
EXTRA = {"power": ",p=3", "step": ",stages=4", "exponential": ""}
SHAPES = {
    "linear": lambda u: u,
    "cosine": lambda u: (1 - math.cos(math.pi * u)) / 2,
    "sqrt": math.sqrt,
    "power": lambda u: u**3,
    "step": lambda u: min(math.floor(4 * u), 3) / 3,
    "exponential": lambda u: 1 - (1.01 * (0.01 / 1.01) ** u - 0.01),
}


def spec_of(name: str, **extra: object) -> str:
    more = "".join(f",{k}={v}" for k, v in extra.items())
    return f"{name}(start={S!r},end={E!r},epochs=10{EXTRA.get(name, '')}{more})"


def test_every_registered_schedule_has_a_closed_form_here():
    assert set(SCHEDULES.names()) == set(SHAPES) | {"constant"}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("pos", [0.0, 2.5, 5.0, 7.3, 10.0, 12.0])
def test_schedule_matches_closed_form(name, pos):
    u = min(pos / 10, 1.0)
    expected = (1 - SHAPES[name](u)) * S + SHAPES[name](u) * E
    assert make_schedule(spec_of(name)).value(pos) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_schedule_starts_and_ends_exactly(name):
    sched = make_schedule(spec_of(name))
    assert sched.value(0) == S
    assert sched.value(10) == E
    assert sched.value(1e9) == E


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_warmup_holds_start_and_hold_reaches_end_early(name):
    sched = make_schedule(spec_of(name, warmup=2, hold=3))
    assert sched.value(1.999) == S
    assert sched.value(2) == S
    assert sched.value(7) == E
    assert sched.value(8.5) == E
    u = 0.5  # the middle of the ramp [2, 7]
    assert sched.value(4.5) == pytest.approx((1 - SHAPES[name](u)) * S + SHAPES[name](u) * E, abs=1e-12)


def test_exponential_is_geometric_between_positive_values():
    sched = make_schedule("exponential(start=1,end=0.01,steps=4)")
    assert [sched.value(i) for i in range(5)] == pytest.approx([1, 10**-0.5, 0.1, 10**-1.5, 0.01], rel=1e-12)
    assert sched.value(4) == 0.01


def test_constant_is_its_value_everywhere():
    sched = make_schedule("constant(value=0.3)")
    assert [sched.value(p) for p in (0, 1, 1e6)] == [0.3, 0.3, 0.3]


def test_steps_unit_reads_step_and_epochs_unit_reads_fractional_epoch():
    by_steps = make_schedule("linear(start=1,end=0,steps=100)")
    by_epochs = make_schedule("linear(start=1,end=0,epochs=2)")
    assert by_steps.update(25, 0.5) == 0.75
    assert by_epochs.update(25, 0.5) == 0.75
    assert by_epochs.update(60, 1.5) == 0.25


def test_per_epoch_update_holds_value_within_an_epoch():
    sched = make_schedule("linear(start=1,end=0,epochs=4)")
    assert sched.update(7, 1.75, per="epoch") == 0.75
    steps = make_schedule("linear(start=1,end=0,steps=16)")  # 4 steps per epoch below
    assert steps.update(7, 1.75, per="epoch") == 0.75


def test_state_dict_round_trip_mid_schedule_continues_identically():
    spec = "cosine(start=0.7853981633974483,end=0,steps=50,warmup=5,hold=5)"
    first = make_schedule(spec)
    for step in range(23):
        first.update(step, step / 10)
    resumed = make_schedule(spec)
    resumed.load_state_dict(first.state_dict())
    assert resumed.current == first.current
    assert [resumed.update(s, s / 10) for s in range(23, 60)] == [first.update(s, s / 10) for s in range(23, 60)]


def test_state_dict_of_another_schedule_is_refused():
    state = make_schedule("linear(start=1,end=0,steps=10)").state_dict()
    with pytest.raises(SpecError, match="schedule state is for"):
        make_schedule("linear(start=1,end=0,steps=20)").load_state_dict(state)


def test_canonical_string_round_trips():
    sched = make_schedule("step(start=1,end=0,steps=10,warmup=2,stages=3)")
    again = make_schedule(str(sched))
    assert str(again) == str(sched)
    assert [again.value(i) for i in range(12)] == [sched.value(i) for i in range(12)]


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("linaer(start=1,end=0,epochs=2)", UnknownNameError, "Did you mean 'linear'"),
        ("linear(start=1,end=0,epochs=-1)", SpecError, "length must be >= 0"),
        ("linear(start=1,end=0,epochs=2,warmup=1,hold=1.5)", SpecError, "exceeds its length"),
        ("linear(start=1,end=0,epochs=2,wramup=1)", SpecError, "Did you mean 'warmup'"),
        ("linear(start=1,end=0)", SpecError, "exactly one of epochs=N or steps=N"),
        ("linear(start=1,end=0,epochs=2,steps=5)", SpecError, "exactly one of epochs=N or steps=N"),
        ("linear(start=one,end=0,epochs=2)", SpecError, "start must be a number"),
        ("power(start=1,end=0,epochs=2,p=0)", SpecError, "p must be > 0"),
        ("step(start=1,end=0,epochs=2,stages=1)", SpecError, "stages must be an integer >= 2"),
        ("constant(value=1,epochs=3)", SpecError, "parameter of schedule constant"),
    ],
)
def test_bad_spec_raises_one_clear_line(spec, error, message):
    with pytest.raises(error, match=message) as info:
        make_schedule(spec)
    assert isinstance(info.value, ActlabError)
    assert "\n" not in str(info.value)


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        make_schedule("cosin(start=1,end=0,epochs=2)")
    assert all(name in str(info.value) for name in SCHEDULES.names())
