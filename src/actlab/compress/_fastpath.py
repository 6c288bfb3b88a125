"""The lookup-table formula: a hand-written kernel, fused by ``torch.compile``, or eager.

Eagerly the formula runs as nine passes over the tensor; compiled it is one
loop that reads x once and writes y once, but reads the tables element by
element; the kernel of :mod:`actlab.compress._kernel` also keeps the tables
in registers, which is what makes a table about as cheap as ReLU.
``PWLActivation`` uses that kernel where it applies (contiguous float32 on
CPU) and builds, and this module otherwise. Compiling costs seconds once per
process and may be unavailable (no C++ compiler, an unsupported platform), so
the choice is made once per device and layout by timing both, and any
failure falls back to the eager formula with one warning.

NaN inputs give NaN; +-inf follow the tail lines (NaN where an end slope is 0).
"""

from __future__ import annotations

import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor


def pwl_lookup(x: Tensor, lo: Tensor, inv_h: Tensor, a: Tensor, b: Tensor, offset: Tensor, last: int,
               lc: Tensor, uc: Tensor) -> Tensor:
    """The reference: ``a[i] + t b[i]`` with i = clamp(floor(u), 0, last) the segment of x.

    ``offset`` (0 or k * (K-1) along the channel dim) selects channel k's rows
    of the flattened tables ``a`` and ``b``. ``lc``, ``uc`` clamp t: -1 and +1
    beside a flat tail (so that x = +-inf gives a + 0 * 1, not a + 0 * inf = NaN),
    else -inf and +inf; interior segments have t in [0, 1) and never meet them.
    """
    u = (x - lo) * inv_h
    i = torch.clamp(torch.floor(u), 0, last)
    # a NaN index would read out of bounds; segment 0 instead keeps y = NaN through t
    # (where + isnan rather than nan_to_num: 2 ONNX nodes instead of 8)
    i = torch.where(torch.isnan(i), 0.0, i)
    t = torch.clamp(u - i, lc, uc)  # keeps NaN
    j = i.long() + offset
    # embedding is a plain ONNX Gather (a[j] exports as Unsqueeze + GatherND)
    return F.embedding(j, a[:, None]).squeeze(-1) + t * F.embedding(j, b[:, None]).squeeze(-1)


def flat_tail_clamps(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor]:
    """Bounds for the excess beyond the range, from the tails' slopes (C,): -1 and +1 where a
    tail is flat (its value is then v + 0 * excess at any x, +-inf included), else -inf and +inf;
    ``pwl_lookup``'s ``lc`` and ``uc``, and the cubic's and polynomial's clamps."""
    inf = torch.full_like(lower, float("inf"))
    return torch.where(lower == 0, -1.0, -inf), torch.where(upper == 0, 1.0, inf)


_compiled = None
_choice: dict[tuple, str] = {}  # (device type, per-channel, ndim, prefer) -> "compiled" | "eager"
_warned = False


def _compiled_lookup():
    global _compiled
    if _compiled is None:
        # dynamic shapes: one compilation serves batch 1 and batch 256 alike
        _compiled = torch.compile(pwl_lookup, dynamic=True)
    return _compiled


def _median_time(fn, args: tuple, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _decide(args: tuple) -> str:
    """Time both paths on a probe of at least 2^18 elements shaped like the input."""
    x = args[0]
    reps = max(1, -(-(1 << 18) // max(x.numel(), 1)))
    probe = x.repeat(reps, *([1] * (x.ndim - 1))) if x.ndim else x.expand(1 << 18)
    probe_args = (probe, *args[1:])
    fast = _compiled_lookup()
    fast(*probe_args)  # compile outside the timing
    if not torch.allclose(fast(*probe_args), pwl_lookup(*probe_args), rtol=1e-5, atol=1e-6, equal_nan=True):
        raise RuntimeError("the compiled lookup disagrees with the eager formula")
    compiled, eager = _median_time(fast, probe_args), _median_time(pwl_lookup, probe_args)
    return "compiled" if compiled < eager else "eager"


def lookup(args: tuple, prefer: str = "auto") -> Tensor:
    """Evaluate the table by the compiled path where it works (and, for "auto", is faster)."""
    global _warned
    x = args[0]
    if x.device.type == "meta":  # shape inference: nothing to time or compile
        return pwl_lookup(*args)
    key = (x.device.type, args[5].numel() > 1, x.ndim, prefer)
    if key not in _choice:
        try:
            if prefer == "compiled":
                _compiled_lookup()(*args)  # compile here, where a failure can still fall back
                _choice[key] = "compiled"
            else:
                _choice[key] = _decide(args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: use eager
            _choice[key] = "eager"
            if not _warned:
                warnings.warn(f"torch.compile of the lookup table failed, using eager: {exc}", stacklevel=3)
                _warned = True
    if _choice[key] == "compiled":
        return _compiled_lookup()(*args)
    return pwl_lookup(*args)


def chosen_paths() -> dict[tuple, str]:
    """What ``lookup`` decided so far, for reports and benchmarks (the kernel, tried
    first by ``PWLActivation``, never reaches ``lookup``)."""
    return dict(_choice)
