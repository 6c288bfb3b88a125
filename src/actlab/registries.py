"""Every registry by kind, for ``actlab list`` and for parametrised tests."""

from __future__ import annotations

from actlab.activations import ACTIVATIONS, ops
from actlab.annealing import SCHEDULES
from actlab.data import DATASETS
from actlab.models import MODELS
from actlab.train import LR_SCHEDULES


def registries() -> dict[str, list[str]]:
    return {
        "activations": ACTIVATIONS.names(),
        "operators": ops.operator_names(),
        "datasets": DATASETS.names(),
        "models": MODELS.names(),
        "lr_schedules": LR_SCHEDULES.names(),
        "schedules": SCHEDULES.names(),
    }
