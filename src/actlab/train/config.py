"""Training settings and learning-rate schedules by name."""

from __future__ import annotations

import math
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from actlab._registry import Registry


class TrainConfig(BaseModel):
    """How one network is trained: Adam on softmax cross-entropy."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)
    # finite and bounded: an absurd value would only produce a diverged run, retried on every re-run
    lr: float = Field(1e-3, gt=0, le=10.0, allow_inf_nan=False)
    l1: float = Field(0.0, ge=0, le=1e3, allow_inf_nan=False, description="L1 penalty on weights of Linear/Conv layers")
    l2: float = Field(0.0, ge=0, le=1e3, allow_inf_nan=False, description="L2 penalty on weights of Linear/Conv layers")
    grad_clip: float | None = Field(None, gt=0, allow_inf_nan=False, description="max global gradient norm")
    lr_schedule: str = "constant"
    seed: int = 0
    eval_batch_size: int = Field(1000, ge=1)


# Each builder gets (optimizer, total optimizer steps); schedulers step once per batch.
LR_SCHEDULES: Registry[Callable[[Optimizer, int], LRScheduler]] = Registry("learning-rate schedule")
LR_SCHEDULES.add("constant", lambda opt, total: LambdaLR(opt, lambda step: 1.0))
LR_SCHEDULES.add("cosine", lambda opt, total: CosineAnnealingLR(opt, T_max=max(total, 1)))
# Ten-fold decay at 50% and 75% of training, the classic ResNet recipe.
LR_SCHEDULES.add(
    "step",
    lambda opt, total: LambdaLR(opt, lambda step: 0.1 ** ((step >= 0.5 * total) + (step >= 0.75 * total))),
)
# Linear warm-up over the first 5% of steps, then cosine decay.
LR_SCHEDULES.add(
    "warmup_cosine",
    lambda opt, total: LambdaLR(
        opt,
        lambda step: min(1.0, (step + 1) / max(1, 0.05 * total))
        * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1))),
    ),
)
