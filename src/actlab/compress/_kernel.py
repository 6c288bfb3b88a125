"""A hand-vectorised CPU kernel for lookup tables, built once per process on first use.

``torch.compile`` fuses the table formula into one loop but reads both tables
element by element through bounds-checked 64-bit indices, about 6x the time of
ReLU. The kernel in ``_pwl_kernel.cpp`` keeps tables of up to 64 entries in
AVX-512 registers and reads them with permutes (gathers on AVX2 or for longer
tables), so it runs at memory speed as ReLU does, and its results equal
:func:`actlab.compress._fastpath.pwl_lookup` bit for bit.

The build (about 10-30 s, once per machine: torch caches it under
``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) needs a
C++ compiler and ninja. Where it fails, :func:`available` is False after one
warning and callers use the compiled or eager formula.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

_SOURCE = Path(__file__).with_name("_pwl_kernel.cpp")
ISAS = ("scalar", "avx2", "avx512")  # index = the kernel's isa argument
_op = None
_vectorised = False
_tried = False
_lock = threading.Lock()  # two threads' first calls must not build twice
_error = ""  # why the build failed, for the warning and for tests that skip


def _load():
    """The operator, building it on the first call of the process; None if that failed."""
    if not _tried:
        with _lock:
            if not _tried:
                _build()
    return _op


def _build() -> None:
    global _op, _vectorised, _tried, _error
    try:
        from torch.utils.cpp_extension import load_inline

        from actlab._cpp import ensure_ninja_on_path

        ensure_ninja_on_path()

        # -ffp-contract=off: a fused multiply-add would round differently from the eager formula
        load_inline("actlab_pwl_kernel", cpp_sources=[_SOURCE.read_text()], is_python_module=False,
                    no_implicit_headers=True, extra_cflags=["-O3", "-ffp-contract=off"])
        _op = torch.ops.actlab_pwl
        _vectorised = ISAS[_op.best_isa()] != "scalar"
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, unwritable cache: fall back
        _error = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"building the lookup-table kernel failed, using torch.compile or eager: {_error}",
                      stacklevel=5)
    _tried = True


def available() -> bool:
    """Whether the kernel is built (building it now if not tried yet)."""
    return _load() is not None


def preferred() -> bool:
    """Whether ``PWLActivation`` should use the kernel: built, and vectorised on this
    CPU (its scalar loop is slower than what ``torch.compile`` makes)."""
    return _load() is not None and _vectorised


def best_isa() -> str:
    """The instruction set the kernel uses on this CPU: "avx512", "avx2" or "scalar"."""
    op = _load()
    if op is None:
        raise RuntimeError("the lookup-table kernel is not available")
    return ISAS[op.best_isa()]


def supports(x: Tensor, values: Tensor) -> bool:
    """What the kernel takes: float32 on CPU, x contiguous with the channels of
    ``values`` (C, K) along dim 1 when C > 1."""
    channels = values.shape[0]
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
            and values.device.type == "cpu" and values.dtype == torch.float32
            and (channels == 1 or (x.ndim >= 2 and x.shape[1] == channels)))


def lookup(x: Tensor, values: Tensor, lo: Tensor, hi: Tensor, isa: str | None = None) -> Tensor:
    """The table of knot ``values`` (C, K) on ``[lo, hi]`` (C,) at ``x``, as ``PWLActivation`` defines it.

    ``isa`` forces a narrower instruction set than the CPU's best (for tests).
    """
    op = _load()
    if op is None:
        raise RuntimeError("the lookup-table kernel is not available")
    # no-ops for a module's buffers
    values, lo, hi = (t.to(torch.float32).contiguous() for t in (values, lo, hi))
    return op.lookup(x, values, lo, hi, -1 if isa is None else ISAS.index(isa))
