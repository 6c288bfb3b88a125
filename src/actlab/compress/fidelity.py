"""How much a compressed model differs from its original, in range and beyond it.

Two input sets: the calibration data itself and a **stress set**, the same
inputs scaled by ``STRESS`` (2), which drives every site beyond the range its
table was fitted on. Per site, the output change |f(x) - g(x)| on the inputs
the site recorded (and on those inputs times 2); for the whole model, the
change of its outputs and, for outputs of shape (N, classes), the share of
inputs whose predicted class is kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from actlab import _devices
from actlab.compress.fit import _rows

STRESS = 2.0


@dataclass(frozen=True)
class Change:
    """Max and mean |original - compressed| over a set of inputs, and the predictions kept there."""

    max: float
    mean: float
    agreement: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _change(a: Tensor, b: Tensor, agreement: float | None = None) -> Change:
    diff = (a.double() - b.double()).abs()
    both_nan = a.isnan() & b.isnan()
    diff = torch.where(both_nan, 0.0, diff.nan_to_num(nan=float("inf")))
    if diff.numel() == 0:
        return Change(0.0, 0.0, agreement)
    return Change(float(diff.max()), float(diff.mean()), agreement)


def site_changes(target, module: nn.Module, rows: Tensor) -> tuple[Change, Change]:
    """(on the recorded inputs, on them times STRESS) for one site; ``rows`` (C, n) as fitted."""
    out = []
    for scale in (1.0, STRESS):
        xs = rows.double() * scale
        out.append(_change(target(xs), _rows(module, xs)))
    return out[0], out[1]


@torch.no_grad()
def model_changes(original: nn.Module, compressed: nn.Module, batches: list[Tensor]) -> dict[str, Change]:
    """{"calibration": ..., "stress": ...}: output change and prediction agreement of the whole model
    (each model run on its own device)."""
    result = {}
    modes = original.training, compressed.training
    original.eval()
    compressed.eval()
    try:
        for key, scale in (("calibration", 1.0), ("stress", STRESS)):
            before, after = [], []
            for batch in batches:
                x = batch * scale if batch.is_floating_point() else batch
                a = original(x.to(_devices.of(original, default=x.device)))
                b = compressed(x.to(_devices.of(compressed, default=x.device)))
                if isinstance(a, Tensor) and isinstance(b, Tensor):
                    before.append(a.detach().cpu())
                    after.append(b.detach().cpu())
            if not before:
                continue
            a, b = torch.cat([t.reshape(t.shape[0], -1) if t.ndim else t.reshape(1, 1) for t in before]), \
                torch.cat([t.reshape(t.shape[0], -1) if t.ndim else t.reshape(1, 1) for t in after])
            agree = None
            if before[0].ndim == 2 and before[0].shape[1] > 1:
                agree = float((a.argmax(1) == b.argmax(1)).double().mean())
            result[key] = _change(a, b, agree)
    finally:
        original.train(modes[0])
        compressed.train(modes[1])
    return result
