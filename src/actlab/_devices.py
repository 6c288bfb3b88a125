"""Where tensors live: a device asked for, checked before any work; a module's device; the
one-line error for an input on another device than a module's own tensors.

A device comes from the user (``--device cuda``, ``device=`` of the API), so a typo or a
machine without CUDA is one line and exit code 2, found before the first run starts, not
a traceback from inside a training step in a worker. A module called on an input on another
device than its parameters would fail deep in a kernel (or, under ``torch.compile``, with
pages of fake-tensor detail); the modules test that with one comparison and raise
:class:`actlab.errors.DeviceError`, which names both devices and the fix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from actlab.errors import ActlabError, DeviceError

EXAMPLES = "e.g. cpu, cuda, cuda:1"


def resolve(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None: the caller's default), or an
    :class:`ActlabError` for a name torch does not know or a device this torch cannot reach."""
    if device is None:
        return None
    try:
        found = torch.device(device)
    except (RuntimeError, TypeError):
        raise ActlabError(f"unknown device {device!r} ({EXAMPLES})") from None
    backend = getattr(torch, found.type, None)  # torch.cuda, torch.xpu, torch.mps: each has is_available
    if found.type not in ("cpu", "meta") and callable(getattr(backend, "is_available", None)):
        if not backend.is_available():
            raise ActlabError(f"device {str(device)!r} was asked for, but this torch sees no "
                              f"{found.type.upper()} device")
        count = getattr(backend, "device_count", lambda: 1)()
        if found.index is not None and found.index >= count:
            raise ActlabError(f"device {str(device)!r} was asked for, but this torch sees {count} "
                              f"{found.type.upper()} device{'s' if count != 1 else ''}")
    return found


def of(module: nn.Module, default: torch.device | None = None) -> torch.device:
    """The device of ``module``'s first parameter or buffer; ``default`` (the CPU) without any."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return default if default is not None else torch.device("cpu")


def check_input(what: str, x: Tensor, own: Tensor, held: str = "parameters") -> None:
    """The one-line error for an input a module cannot take: on another device than ``own``
    (one of the module's tensors, its ``held``), or not floating-point. Callers test the
    common case inline first and call this only where the input differs."""
    if x.device != own.device:
        raise DeviceError(f"{what} got an input on {x.device} but its {held} are on {own.device}: move the "
                          f"model with model.to('{x.device}') (or the input with x.to('{own.device}'))")
    if not x.is_floating_point():
        raise ActlabError(f"{what} takes floating-point inputs, got {x.dtype}")


def ray_gpus(device: torch.device | None, tasks: int, cluster_gpus: float) -> float:
    """The GPUs each of ``tasks`` Ray tasks asks for: none off CUDA; on CUDA an equal share of
    the cluster's, at most one each. Ray hides every GPU from a task that asks for none (it sets
    ``CUDA_VISIBLE_DEVICES`` empty), so a CUDA run must ask, or it fails for want of CUDA."""
    if device is None or device.type != "cuda":
        return 0.0
    if cluster_gpus <= 0:
        raise ActlabError(f"device {str(device)!r} was asked for, but the Ray cluster has no GPU")
    return min(1.0, cluster_gpus / max(tasks, 1))


def ray_task_device(device: torch.device | None) -> str | None:
    """The device a Ray task trains on: Ray gives a task its GPU as the only visible one
    (``cuda`` there), whatever index the driver named."""
    if device is None:
        return None
    return "cuda" if device.type == "cuda" else str(device)
