"""Classification metrics from a confusion matrix.

Macro precision/recall/F1 average the per-class scores over all classes, with
0 for a class that is never predicted (scikit-learn's ``zero_division=0``).
The convexity-annealing code this project replaces returned one class's recall
as "the" recall; the test suite checks these against scikit-learn.
"""

from __future__ import annotations

import torch
from torch import Tensor


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def classification_metrics(y_true: Tensor, y_pred: Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1."""
    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp = cm.diag()
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-300), torch.zeros_like(tp))
    # Average over the classes present in y_true or y_pred, as scikit-learn does.
    present = (predicted + actual) > 0
    return {
        "acc": float(tp.sum() / cm.sum().clamp(min=1)),
        "precision": float(precision[present].mean()) if present.any() else 0.0,
        "recall": float(recall[present].mean()) if present.any() else 0.0,
        "f1": float(f1[present].mean()) if present.any() else 0.0,
    }
