"""GPU timing for the benches: CUDA events around blocks of calls, interleaved medians, peak memory.

On the CPU (a bench's ``--smoke`` run) the same functions time with ``time.perf_counter`` and
report no memory, so a CPU-only test can run a GPU bench end to end.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def block(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    """Seconds per call of ``calls`` calls of ``fn``, by CUDA events on a GPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3 / calls


def working(fns: dict[str, Callable[[], object]], device: torch.device, errors: dict, where: str) -> dict:
    """The candidates whose first two calls (the warm-up: kernel compiles, cudnn's choices) succeed."""
    ok = {}
    for name, fn in fns.items():
        try:
            fn()
            fn()
            sync(device)
            ok[name] = fn
        except Exception as exc:  # noqa: BLE001 - a failed candidate is a result, not a crash
            first = str(exc).splitlines()[0][:300] if str(exc) else ""
            errors.setdefault(where, {})[name] = f"{type(exc).__name__}: {first}"
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return ok


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, seconds: float, device: torch.device) -> dict:
    """Median seconds per call; every repeat runs each candidate once, as a block of about ``seconds``."""
    calls = {name: max(1, int(seconds / max(block(fn, 1, device), 1e-7))) for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = random.Random(0)  # shuffled rounds: no candidate always runs right after the same one
    for _ in range(repeats):
        for name in order.sample(list(fns), len(fns)):
            times[name].append(block(fns[name], calls[name], device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes ``fn`` allocates at its peak beyond what was allocated before (None off CUDA)."""
    if device.type != "cuda":
        return None
    sync(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - base
