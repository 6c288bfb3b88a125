"""``theta_relu``: ``max(x tan(theta), x)``, from the identity (theta = pi/4) to ReLU (theta = 0).

Convexity annealing (ecotner/ConvexityAnnealing): a network with theta = pi/4
is linear, so it is easy to optimise and gradients reach the lower layers;
moving theta to 0 during training turns it into a ReLU network. For theta
in [0, pi/4] the function is a leaky ReLU with negative slope tan(theta).

Three modes: ``fixed`` (theta = 0 is the ReLU baseline), ``scheduled``
(theta from a schedule, moved by the trainer's ``set_progress``) and
``trainable`` (theta = pi/4 * sigmoid(raw), per layer or per channel/neuron).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from actlab._registry import unknown_name_message
from actlab.activations.registry import register_activation
from actlab.activations.sites import Site
from actlab.annealing.schedules import Schedule, check_update, make_schedule
from actlab.errors import SpecError

QUARTER_PI = math.pi / 4
DEFAULT_SCHEDULE = f"linear(start={QUARTER_PI!r},end=0,epochs=5)"
MODES = ("fixed", "scheduled", "trainable")
SHARINGS = ("layer", "channel", "neuron")
# a trainable theta starts within this fraction of [0, pi/4]: the ends are
# sigmoid(+-inf), and near them the parametrisation's gradient vanishes
_INIT_MARGIN = 0.01


def _slope(theta: float) -> float:
    # float64 tan(pi/4) is 1 - 2**-53: pi/4 must be exactly the identity
    return 1.0 if theta == QUARTER_PI else math.tan(theta)


def _along_dim1(values: Tensor, ndim: int) -> Tensor:
    """Shape (C,) -> (1, C, 1, ...) so that it broadcasts over an ``ndim`` input."""
    return values.view(1, -1, *([1] * (ndim - 2)))


class ThetaReLU(nn.Module):
    """``max(x tan(theta), x)`` with a constant ``theta`` (radians)."""

    def __init__(self, theta: float = QUARTER_PI) -> None:
        super().__init__()
        self.theta = float(theta)

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x * _slope(self.theta), x)

    def curve(self, xs: Tensor) -> Tensor:
        return self.forward(xs)

    def scalars(self) -> dict[str, float]:
        return {"theta": self.theta, "theta_deg": math.degrees(self.theta)}

    def extra_repr(self) -> str:
        return f"theta={self.theta:.6g}"


class ScheduledThetaReLU(ThetaReLU):
    """``theta`` follows a schedule, per optimizer step or per epoch."""

    def __init__(self, schedule: Schedule, update: str = "step") -> None:
        super().__init__(schedule.current)
        self.schedule = schedule
        self.update = update

    def set_progress(self, step: int, epoch: float) -> None:
        self.theta = self.schedule.update(step, epoch, per=self.update)

    def get_extra_state(self) -> dict:
        return self.schedule.state_dict()

    def set_extra_state(self, state: dict) -> None:
        self.schedule.load_state_dict(state)
        self.theta = self.schedule.current

    def extra_repr(self) -> str:
        return f"theta={self.theta:.6g}, schedule={self.schedule}, update={self.update}"


class TrainableThetaReLU(nn.Module):
    """``theta = pi/4 * sigmoid(raw)``: inside [0, pi/4] for any ``raw``, no clipping."""

    def __init__(self, num_thetas: int = 1, theta: float = QUARTER_PI, lr: float = 0.01) -> None:
        super().__init__()
        frac = min(max(theta / QUARTER_PI, _INIT_MARGIN), 1 - _INIT_MARGIN)
        self.raw = nn.Parameter(torch.full((num_thetas,), math.log(frac / (1 - frac))))
        self.raw.actlab_lr = float(lr)
        self.per_channel = num_thetas > 1

    @property
    def theta(self) -> Tensor:
        return QUARTER_PI * torch.sigmoid(self.raw)

    def _slope(self, x: Tensor) -> Tensor:
        # in x's dtype for float64, float32 for half types (one rounding, in x * slope)
        raw = self.raw if x.dtype.itemsize < 4 else self.raw.to(x.dtype)
        slope = torch.tan(QUARTER_PI * torch.sigmoid(raw))
        return _along_dim1(slope, x.dim()) if self.per_channel else slope.reshape(())

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x * self._slope(x), x).to(x.dtype)

    def curve(self, xs: Tensor) -> Tensor:
        slope = torch.tan(self.theta).to(xs)
        out = torch.maximum(slope[:, None] * xs[None, :], xs[None, :])
        return out if self.per_channel else out[0]

    @torch.no_grad()
    def scalars(self) -> dict[str, float]:
        theta = self.theta
        out = {"theta": theta.mean().item(), "theta_deg": math.degrees(theta.mean().item())}
        if self.per_channel:
            out["theta_deg_min"] = math.degrees(theta.min().item())
            out["theta_deg_max"] = math.degrees(theta.max().item())
        return out

    @torch.no_grad()
    def histograms(self) -> dict[str, Tensor]:
        return {"theta_deg": torch.rad2deg(self.theta)} if self.per_channel else {}

    def extra_repr(self) -> str:
        return f"num_thetas={self.raw.numel()}, lr={self.raw.actlab_lr}"


def _unused(mode: str, **given: object) -> None:
    for key, value in given.items():
        if value is not None:
            raise SpecError(f"theta_relu: {key} does not apply to mode={mode}")


@register_activation("theta_relu")
def theta_relu(
    site: Site | None = None,
    /,
    mode: str | None = None,
    theta: float | None = None,
    theta_deg: float | None = None,
    schedule: str | None = None,
    sharing: str | None = None,
    lr: float | None = None,
    update: str | None = None,
) -> nn.Module:
    """``theta_relu(mode=fixed|scheduled|trainable, theta=<rad> | theta_deg=<deg>, ...)``.

    ``mode`` defaults to ``scheduled`` when a ``schedule`` is given, else
    ``fixed``. ``channel`` and ``neuron`` sharing are the same thing: one
    theta per entry along dim 1 of the activation.
    """
    if mode is None:
        mode = "scheduled" if schedule is not None else "fixed"
    if mode not in MODES:
        raise SpecError(unknown_name_message("theta_relu mode", str(mode), list(MODES)))
    if theta is not None and theta_deg is not None:
        raise SpecError("theta_relu: give theta (radians) or theta_deg (degrees), not both")
    if theta_deg is not None:
        theta = math.radians(float(theta_deg))
    if mode == "scheduled":
        _unused(mode, theta=theta, sharing=sharing, lr=lr)
        return ScheduledThetaReLU(make_schedule(schedule or DEFAULT_SCHEDULE), check_update(update or "step"))
    theta = QUARTER_PI if theta is None else float(theta)
    if mode == "fixed":
        _unused(mode, schedule=schedule, sharing=sharing, lr=lr, update=update)
        if not 0 <= theta < math.pi / 2:
            raise SpecError(f"theta_relu: theta must be in [0, pi/2), got {theta:g}")
        return ThetaReLU(theta)
    _unused(mode, schedule=schedule, update=update)
    if not 0 <= theta <= QUARTER_PI:
        raise SpecError(f"theta_relu: a trainable theta starts in [0, pi/4], got {theta:g}")
    sharing = sharing or "layer"
    if sharing not in SHARINGS:
        raise SpecError(unknown_name_message("theta_relu sharing", str(sharing), list(SHARINGS)))
    num = 1 if sharing == "layer" else (site or Site()).num_features
    return TrainableThetaReLU(num, theta, 0.01 if lr is None else float(lr))
