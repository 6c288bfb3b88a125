"""A hand-vectorised CPU kernel for lookup tables, built once per machine on first use.

``torch.compile`` fuses the table formula into one loop but reads both tables
element by element through bounds-checked 64-bit indices, about 6x the time of
ReLU. The kernel in ``_pwl_kernel.cpp`` keeps tables of up to 64 segments in
registers and reads them with permutes (AVX-512: 16-entry permutes; AVX2:
8-entry permutes and blends; gathers only for longer tables or per-lane
channels), so it runs at memory speed as ReLU does, and its results equal
:func:`actlab.compress._fastpath.pwl_lookup` bit for bit. The instruction set
is picked at run time from the CPU; ``ACTLAB_PWL_ISA=avx2`` (or
:func:`set_isa`) narrows it, to measure the AVX2 path on an AVX-512 CPU. The
AVX2 path reads its tables by permutes, gathers, gathers of (a, b) pairs or plain pair loads,
whichever a 16K-element trial at first use finds fastest on this CPU
(``ACTLAB_PWL_AVX2_READ`` at start-up, or :func:`force_avx2_read`, forces one); all give the same bits.

The build (:class:`actlab._cpp.CppLibrary`, as for every C++ kernel: about
10-30 s, once per machine: torch caches it under ``$TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``) needs a C++ compiler and ninja. Where it
fails, or ``ACTLAB_KERNELS=0``, callers use the compiled or eager formula.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from actlab._cpp import CppLibrary, kernels_enabled

_SOURCE = Path(__file__).with_name("_pwl_kernel.cpp")
ISAS = ("scalar", "avx2", "avx512")  # index = the kernel's isa argument
ISA_VAR = "ACTLAB_PWL_ISA"
READ_VAR = "ACTLAB_PWL_AVX2_READ"
AVX2_READS = ("permute", "gather", "pairs", "loads")  # index = the kernel's Read


def _on_load() -> None:
    _narrow(LIBRARY.module, os.environ.get(ISA_VAR) or None)
    read = os.environ.get(READ_VAR) or None
    if read is not None and read not in AVX2_READS:
        raise ValueError(f"{READ_VAR} must be one of {', '.join(AVX2_READS)}, got {read!r}")
    LIBRARY.module.force_avx2_read(-1 if read is None else AVX2_READS.index(read))


# One build for every x86 CPU: the AVX2 and AVX-512 paths carry their own target attributes and
# the CPU picks one at run time, so no -mavx flags for the whole file. -ffp-contract=off: a fused
# multiply-add would round differently from the eager formula.
LIBRARY = CppLibrary("actlab_pwl_kernel_v2", [_SOURCE], _on_load, python_module=True,
                     cflags=["-O3", "-ffp-contract=off"], fallback="torch.compile or the eager formula")
# What the library's build gave, as this module's callers (and tests) read it.
_module = None
_vectorised = False  # the ISA in use is AVX2 or AVX-512
_tried = False
_error = ""  # why the build failed, for the warning and for tests that skip


def _load():
    """The extension module, building it on the first call of the process; None if that failed."""
    global _module, _tried, _error
    if not _tried:
        _module = LIBRARY.module if LIBRARY.load() else None
        _error, _tried = LIBRARY.error or "", True
    return _module


def available() -> bool:
    """Whether the kernel is built (building it now if not tried yet)."""
    return _load() is not None


def preferred() -> bool:
    """Whether ``PWLActivation`` should use the kernel: kernels on, built, and vectorised on
    this CPU (its scalar loop is slower than what ``torch.compile`` makes)."""
    return kernels_enabled() and (_module if _tried else _load()) is not None and _vectorised


def best_isa() -> str:
    """The instruction set the CPU allows the kernel: "avx512", "avx2" or "scalar"."""
    return ISAS[_require().best_isa()]


def current_isa() -> str:
    """The instruction set calls use now (the best, unless narrowed)."""
    return ISAS[_require().current_isa()]


def set_isa(isa: str | None) -> None:
    """Narrow the instruction set for this process; None restores the best."""
    _narrow(_require(), isa)


def _narrow(module, isa: str | None) -> None:
    if isa is not None and isa not in ISAS:
        raise ValueError(f"{ISA_VAR} must be one of {', '.join(ISAS)}, got {isa!r}")
    global _vectorised
    module.set_isa(-1 if isa is None else ISAS.index(isa))
    _vectorised = module.current_isa() > 0


def _require():
    if _load() is None:
        raise RuntimeError(f"the lookup-table kernel is not available: {_error}")
    return _module


def try_lookup(x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor) -> Tensor | None:
    """The table at ``x``, or None when the kernel does not take these tensors (another
    dtype or device, non-contiguous, channels not along dim 1). One call, no dispatcher.
    ``tab`` (C, 4T) holds per channel a = values[:-1], b = diff(values), then a and b
    interleaved (``PWLActivation.tab``)."""
    return _module.try_lookup(x, tab, lo, inv_h)


def lookup(x: Tensor, tab: Tensor, lo: Tensor, inv_h: Tensor, isa: str | None = None) -> Tensor:
    """The operator ``torch.ops.actlab_pwl.lookup``, with ``isa`` forcing a path (for tests)."""
    _require()
    return torch.ops.actlab_pwl.lookup(x, tab, lo, inv_h, -1 if isa is None else ISAS.index(isa))





def force_avx2_read(read: str | None) -> None:
    """Force how the AVX2 path reads tables for this process (None: tuned per CPU again)."""
    if read is not None and read not in AVX2_READS:
        raise ValueError(f"read must be one of {', '.join(AVX2_READS)}, got {read!r}")
    _require().force_avx2_read(-1 if read is None else AVX2_READS.index(read))


def avx2_read(segments: int) -> str | None:
    """How the AVX2 path reads tables of ``segments`` entries on this CPU (timed once per
    process and size class, or forced); None without AVX2."""
    read = _require().avx2_read(segments)
    return AVX2_READS[read] if read >= 0 else None
