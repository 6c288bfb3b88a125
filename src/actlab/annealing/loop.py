"""Annealing in a training loop of one's own.

actlab's trainer tells every scheduled activation (``theta_relu`` with a
schedule, ``anneal``) how far training is before each optimiser step. A plain
PyTorch loop must do the same, or the schedule never moves:

    for i, (x, y) in enumerate(batches):
        actlab.annealing.step(model, i, steps_per_epoch=len(batches))
        loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
"""

from __future__ import annotations

from torch import nn


def step(model: nn.Module, step: int, steps_per_epoch: int) -> int:
    """Move every scheduled activation of ``model`` to optimiser step ``step`` (epoch
    ``step / steps_per_epoch``); returns how many activations it moved."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    moved = [m for m in model.modules() if hasattr(m, "set_progress")]
    for m in moved:
        m.set_progress(step, step / steps_per_epoch)
    return len(moved)
