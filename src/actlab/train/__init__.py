"""Training: Adam on softmax cross-entropy with per-epoch metrics."""

from actlab.train.config import LR_SCHEDULES, TrainConfig
from actlab.train.loop import TrainResult, activation_scalars, evaluate, train_run
from actlab.train.metrics import classification_metrics

__all__ = [
    "LR_SCHEDULES",
    "TrainConfig",
    "TrainResult",
    "activation_scalars",
    "classification_metrics",
    "evaluate",
    "train_run",
]
