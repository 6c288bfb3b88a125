"""Schedules: a value that moves from ``start`` to ``end`` during training.

A schedule is written as a spec string, e.g.
``linear(start=0.7853981633974483,end=0,epochs=5,warmup=1)``. Its length is
given in ``epochs`` (evaluated on fractional epochs) or in ``steps``
(optimizer steps); ``warmup`` holds the start value at the beginning and
``hold`` holds the end value for the last part, both in the same unit. In
between, a shape ``w(u)`` with ``w(0) = 0`` and ``w(1) = 1`` blends the two
values. At and after ``length - hold`` the value IS ``end`` (returned as
is, not computed), so an anneal to 0 reaches 0 exactly — unlike the
original ConvexityAnnealing schedule, which stopped one step short.

A schedule remembers its last position (``update``), and ``state_dict``
saves it, so a resumed run continues with identical values.
"""

from __future__ import annotations

import math
from typing import Literal

from actlab._registry import Registry, unknown_name_message
from actlab.errors import SpecError
from actlab.spec import name_and_options

Unit = Literal["epochs", "steps"]
UPDATES = ("step", "epoch")


def check_update(update: str) -> str:
    """Validate an ``update=step|epoch`` option: how often a scheduled value moves."""
    if update not in UPDATES:
        raise SpecError(unknown_name_message("update", str(update), list(UPDATES)))
    return update


class Schedule:
    """Base class: ``start`` -> ``end`` over ``length`` units with a shape ``w(u)``."""

    name = "schedule"
    extra: tuple[str, ...] = ()  # the shape's own parameters, in spec order

    def __init__(
        self,
        start: float = 0.0,
        end: float = 0.0,
        length: float = 0.0,
        unit: Unit = "epochs",
        warmup: float = 0.0,
        hold: float = 0.0,
    ) -> None:
        self.start, self.end = float(start), float(end)
        self.length, self.unit = float(length), unit
        self.warmup, self.hold = float(warmup), float(hold)
        if unit not in ("epochs", "steps"):
            raise SpecError(f"schedule unit must be 'epochs' or 'steps', got {unit!r}")
        for key in ("start", "end", "length", "warmup", "hold"):
            if not math.isfinite(getattr(self, key)):
                raise SpecError(f"{self.name} schedule: {key} must be finite")
        for key in ("length", "warmup", "hold"):
            if getattr(self, key) < 0:
                raise SpecError(f"{self.name} schedule: {key} must be >= 0, got {getattr(self, key):g}")
        if self.warmup + self.hold > self.length:
            raise SpecError(
                f"{self.name} schedule: warmup + hold ({self.warmup + self.hold:g}) "
                f"exceeds its length ({self.length:g} {unit})"
            )
        self.position = 0.0

    def shape(self, u: float) -> float:
        """The blend weight of ``end`` at ramp fraction ``u`` in (0, 1)."""
        raise NotImplementedError

    def blend(self, w: float) -> float:
        # (1 - w) s + w e, not s + w (e - s): exact at both w = 0 and w = 1
        return (1.0 - w) * self.start + w * self.end

    def value(self, position: float) -> float:
        """The value at ``position``, counted in the schedule's own unit."""
        ramp_end = self.length - self.hold
        if position >= ramp_end:
            return self.end
        if position <= self.warmup:
            return self.start
        return self.blend(self.shape((position - self.warmup) / (ramp_end - self.warmup)))

    def update(self, step: int, epoch: float, per: Literal["step", "epoch"] = "step") -> float:
        """Move to the trainer's progress and return the value there.

        ``per="epoch"`` holds the value constant within an epoch: the schedule
        is read at the start of the current epoch.
        """
        if per == "epoch":
            whole = math.floor(epoch)
            # steps per epoch = step / epoch; at epoch 0 the epoch start is step 0
            step = round(whole * step / epoch) if epoch > 0 else 0
            epoch = float(whole)
        self.position = float(epoch) if self.unit == "epochs" else float(step)
        return self.value(self.position)

    @property
    def current(self) -> float:
        return self.value(self.position)

    def state_dict(self) -> dict[str, object]:
        return {"spec": str(self), "position": self.position}

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state.get("spec") != str(self):
            raise SpecError(f"schedule state is for {state.get('spec')!r}, not {str(self)!r}")
        self.position = float(state["position"])  # type: ignore[arg-type]

    def __str__(self) -> str:
        parts = {"start": self.start, "end": self.end, self.unit: self.length}
        parts.update({k: getattr(self, k) for k in ("warmup", "hold") if getattr(self, k)})
        parts.update({k: getattr(self, k) for k in self.extra})
        return f"{self.name}({','.join(f'{k}={v!r}' for k, v in sorted(parts.items()))})"

    __repr__ = __str__


SCHEDULES: Registry[type[Schedule]] = Registry("schedule")


def _register(name: str):
    def add(cls: type[Schedule]) -> type[Schedule]:
        cls.name = name
        return SCHEDULES.register(name)(cls)

    return add


@_register("constant")
class Constant(Schedule):
    """``value`` throughout (``start`` and ``end`` both set to it)."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(start=value, end=value)

    def value(self, position: float) -> float:
        return self.start

    def __str__(self) -> str:
        return f"constant(value={self.start!r})"


@_register("linear")
class Linear(Schedule):
    def shape(self, u: float) -> float:
        return u


@_register("cosine")
class Cosine(Schedule):
    """Half a cosine: slow near both ends (Loshchilov & Hutter's SGDR shape)."""

    def shape(self, u: float) -> float:
        return 0.5 * (1.0 - math.cos(math.pi * u))


@_register("sqrt")
class Sqrt(Schedule):
    """Fast at first, slow near the end."""

    def shape(self, u: float) -> float:
        return math.sqrt(u)


@_register("power")
class Power(Schedule):
    """``w = u ** p``: p < 1 moves early, p > 1 late."""

    extra = ("p",)

    def __init__(self, p: float = 2.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.p = float(p)
        if not self.p > 0:
            raise SpecError(f"power schedule: p must be > 0, got {p}")

    def shape(self, u: float) -> float:
        return u**self.p


@_register("step")
class Step(Schedule):
    """``stages`` equal plateaus: the first at ``start``, the last at ``end``."""

    extra = ("stages",)

    def __init__(self, stages: int = 4, **kwargs) -> None:
        super().__init__(**kwargs)
        if not isinstance(stages, int) or stages < 2:
            raise SpecError(f"step schedule: stages must be an integer >= 2, got {stages!r}")
        self.stages = stages

    def shape(self, u: float) -> float:
        return min(math.floor(u * self.stages), self.stages - 1) / (self.stages - 1)


@_register("exponential")
class Exponential(Schedule):
    """Geometric from ``start`` to ``end`` when both are nonzero with one sign.

    Otherwise (e.g. ``end = 0``, where no geometric sequence arrives) the
    distance to ``end`` decays geometrically towards ``-offset`` of the
    total distance and is shifted back: ``d(u) = (1 + c) (c / (1 + c))^u - c``
    with ``c = offset`` (default 0.01), so ``d(0) = 1`` and ``d(1) = 0``
    exactly; with c = 0.01 that is about 4.6 e-folds of decay.
    """

    extra = ("offset",)

    def __init__(self, offset: float = 0.01, **kwargs) -> None:
        super().__init__(**kwargs)
        self.offset = float(offset)
        if not self.offset > 0:
            raise SpecError(f"exponential schedule: offset must be > 0, got {offset}")

    def shape(self, u: float) -> float:
        if self.start == self.end:
            return u
        if self.start * self.end > 0:
            # the geometric value, expressed as a blend weight of end
            v = self.start * (self.end / self.start) ** u
            return (v - self.start) / (self.end - self.start)
        c = self.offset
        return 1.0 - ((1.0 + c) * (c / (1.0 + c)) ** u - c)


def make_schedule(spec: str | Schedule) -> Schedule:
    """A schedule from a spec string such as ``cosine(start=1,end=0,steps=500)``.

    A :class:`Schedule` instance is returned as is.
    """
    if isinstance(spec, Schedule):
        return spec
    name, kwargs = name_and_options(spec, "schedule")
    cls = SCHEDULES.get(name)
    if cls is Constant:
        valid = ["value"]
    else:
        valid = ["start", "end", "epochs", "steps", "warmup", "hold", *cls.extra]
    for key in kwargs:
        if key not in valid:
            raise SpecError(unknown_name_message(f"parameter of schedule {name}", key, valid))
    for key, val in kwargs.items():
        if key != "stages" and (isinstance(val, bool) or not isinstance(val, (int, float))):
            raise SpecError(f"schedule {name}: {key} must be a number, got {val!r}")
    if cls is not Constant:
        if ("epochs" in kwargs) == ("steps" in kwargs):
            raise SpecError(f"schedule {name} needs its length as exactly one of epochs=N or steps=N")
        unit = "epochs" if "epochs" in kwargs else "steps"
        kwargs["length"], kwargs["unit"] = kwargs.pop(unit), unit
    return cls(**kwargs)
