"""Convexity annealing: activations that move from the identity to their target.

Importing this package registers ``theta_relu`` and ``anneal`` as activations.
"""

from actlab.annealing.anneal import Anneal
from actlab.annealing.loop import step
from actlab.annealing.schedules import SCHEDULES, Schedule, make_schedule
from actlab.annealing.theta_relu import ScheduledThetaReLU, ThetaReLU, TrainableThetaReLU

__all__ = [
    "step",
    "SCHEDULES",
    "Anneal",
    "Schedule",
    "ScheduledThetaReLU",
    "ThetaReLU",
    "TrainableThetaReLU",
    "make_schedule",
]
