"""What every speed bench shares: the CPU it ran on, interleaved medians, quiet memory."""

from __future__ import annotations

import ctypes
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable

import torch


def cpu_info() -> dict:
    """The CPU's name and the instruction sets that matter to the kernels."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and name in (platform.processor(), platform.machine()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    isa = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other"
    return {"name": name, "isa": isa, "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "torch_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "forced": forced_env(),
            "torch": torch.__version__}


# What makes this process run as on an AVX2-only CPU: torch's ATen kernels (and with them the
# learnable families' build), actlab's table kernel, oneDNN (convolutions: it ignores
# ATEN_CPU_CAPABILITY and ran its AVX-512 code) and MKL (matmuls).
FORCE_ENV = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ACTLAB_PWL_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                      "MKL_ENABLE_INSTRUCTIONS": "AVX2"}}


def force_isa(isa: str | None) -> None:
    """Run this script again with every library held to ``isa`` (see FORCE_ENV), unless it already is.

    The libraries read these variables when they load, so the process starts over with them set.
    """
    if not isa:
        return
    env = FORCE_ENV[isa]
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env})


def forced_env() -> dict:
    """The ISA-limiting variables set for this process (see FORCE_ENV)."""
    return {k: os.environ[k] for k in FORCE_ENV["avx2"] if k in os.environ}


def keep_freed_memory() -> bool:
    """Stop glibc returning freed memory to the OS (no candidate pays for fresh pages by the
    luck of the allocation order); False where that is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 32 << 20))


def calls_for(fn: Callable[[], object], seconds: float) -> int:
    """How many calls of ``fn`` take about ``seconds`` (at least one)."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(seconds / once))


def interleaved(candidates: dict[str, Callable[[], object]], repeats: int, seconds: float = 0.02,
                seed: int = 0) -> dict[str, float]:
    """Median seconds per call of each candidate. Every repeat runs every candidate once, in a
    shuffled order, as a block of calls lasting about ``seconds``, so that the load of a shared
    machine falls on all alike and no candidate always runs where preemption is likeliest."""
    for fn in candidates.values():  # warm-up: first-call builds, caches, page faults
        fn()
    calls = {name: calls_for(fn, seconds) for name, fn in candidates.items()}
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = random.Random(seed)
    for _ in range(repeats):
        for name in order.sample(list(candidates), len(candidates)):
            fn, n = candidates[name], calls[name]
            os.sched_yield()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(ts) for name, ts in times.items()}
