"""``anneal(base=f)``: ``(1 - t) x + t f(x)``, from the identity (t = 0) to ``f`` (t = 1).

Convexity annealing generalised to any registered activation: the network
starts linear and turns into an ``f`` network as ``t`` follows its schedule.
The base is made by ``make_activation(base, site)``, so a learnable base
keeps its own parameters, trained as usual.
"""

from __future__ import annotations

from torch import Tensor, nn

from actlab.activations.registry import make_activation, register_activation
from actlab.activations.sites import Site
from actlab.annealing.schedules import Schedule, check_update, make_schedule
from actlab.errors import SpecError

DEFAULT_SCHEDULE = "linear(start=0,end=1,epochs=5)"


class Anneal(nn.Module):
    """Blend the identity into ``base`` with a scheduled weight ``t``.

    The trainer reaches ``base`` through ``modules()`` itself, so its own
    ``set_progress``, ``scalars`` and ``regularization`` are not forwarded here
    (forwarding would count a penalty twice).
    """

    def __init__(self, base: nn.Module, schedule: Schedule, update: str = "step") -> None:
        super().__init__()
        self.base = base
        self.schedule = schedule
        self.update = update
        self.t = schedule.current

    def set_progress(self, step: int, epoch: float) -> None:
        self.t = self.schedule.update(step, epoch, per=self.update)

    def forward(self, x: Tensor) -> Tensor:
        # the ends are taken literally: exact, cheaper, and 0 * f(x) would turn an inf into nan
        if self.t == 0:
            return x
        if self.t == 1:
            return self.base(x)
        return (1 - self.t) * x + self.t * self.base(x)

    def curve(self, xs: Tensor) -> Tensor:
        fx = self.base.curve(xs) if hasattr(self.base, "curve") else self.base(xs)
        return (1 - self.t) * xs + self.t * fx

    def scalars(self) -> dict[str, float]:
        return {"t": self.t}

    def get_extra_state(self) -> dict:
        return self.schedule.state_dict()

    def set_extra_state(self, state: dict) -> None:
        self.schedule.load_state_dict(state)
        self.t = self.schedule.current

    def extra_repr(self) -> str:
        return f"t={self.t:.6g}, schedule={self.schedule}, update={self.update}"


@register_activation("anneal")
def anneal(
    site: Site | None = None,
    /,
    base: str | None = None,
    schedule: str = DEFAULT_SCHEDULE,
    update: str = "step",
) -> nn.Module:
    """``anneal(base=<activation spec>, schedule=<schedule spec>, update=step|epoch)``."""
    if not isinstance(base, str):
        raise SpecError("anneal needs base=<activation spec>, e.g. anneal(base=gelu)")
    return Anneal(make_activation(base, site), make_schedule(schedule), check_update(update))
