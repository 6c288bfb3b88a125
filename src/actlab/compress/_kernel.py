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
    global _op, _tried, _error
    try:
        from torch.utils.cpp_extension import load_inline

        # -ffp-contract=off: a fused multiply-add would round differently from the eager formula
        load_inline("actlab_pwl_kernel", cpp_sources=[_SOURCE.read_text()], is_python_module=False,
                    no_implicit_headers=True, extra_cflags=["-O3", "-ffp-contract=off"])
        _op = torch.ops.actlab_pwl
    except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, unwritable cache: fall back
        _error = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"building the lookup-table kernel failed, using torch.compile or eager: {_error}",
                      stacklevel=5)
    _tried = True


def available() -> bool:
    """Whether the kernel is built (building it now if not tried yet)."""
    return _load() is not None


def best_isa() -> str:
    """The instruction set the kernel uses on this CPU: "avx512", "avx2" or "scalar"."""
    op = _load()
    if op is None:
        raise RuntimeError("the lookup-table kernel is not available")
    return ISAS[op.best_isa()]


def supports(x: Tensor, channels: int) -> bool:
    """Layouts the kernel takes: contiguous float32 on CPU, channels (if > 1) along dim 1."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
            and (channels == 1 or (x.ndim >= 2 and x.shape[1] == channels)))


def lookup(x: Tensor, lo: Tensor, inv_h: Tensor, a: Tensor, b: Tensor, isa: str | None = None) -> Tensor:
    """The table formula for ``x``; ``lo``, ``inv_h`` (C,), ``a``, ``b`` (C, K-1) float32.

    ``isa`` forces a narrower instruction set than the CPU's best (for tests).
    """
    op = _load()
    if op is None:
        raise RuntimeError("the lookup-table kernel is not available")
    # no-ops for float32 module buffers; a sliced table may be strided
    lo, inv_h, a, b = (t.to(torch.float32).contiguous() for t in (lo, inv_h, a, b))
    return op.lookup(x, lo, inv_h, a, b, -1 if isa is None else ISAS.index(isa))
