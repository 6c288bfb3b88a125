"""Triton kernels: the fused path of CUDA tensors, run on the CPU by Triton's interpreter in tests.

Every fused C++ operator of ``actlab_learnable`` (and the lookup table of
``compress``) has a Triton twin in ``torch.ops.actlab_triton`` with the same
schema and semantics, registered with ``torch.library.custom_op`` and a fake
implementation, so that autograd, ``torch.compile`` (one node, no graph
break) and the dtype policy work on CUDA as on the CPU. The kernel modules
import ``triton`` and are imported only on first use (:class:`TritonLibrary`),
so ``import actlab`` never pays for it; where triton is missing or a module
fails to import, one warning says so and the PyTorch reference runs.

Without a GPU the same kernels run through Triton's interpreter
(``TRITON_INTERPRET=1``, set before the kernel modules are imported) on CPU
tensors: :func:`on_cpu` (or ``ACTLAB_TRITON_CPU=1``) sends float32 CPU calls
to them instead of the C++ kernels. That is how ``make test`` proves them;
it is for tests, not speed (the interpreter runs each program in numpy).

The grid, shared by every per-unit kernel (:func:`tiles`): an input (N, C, S...)
with one parameter set per channel is seen as rows j = (n, s) of N * S elements
by C columns, and a program takes a [BJ, BC] tile, so that its parameters are
loaded once per column and its parameter gradients are one sum over the tile's
rows, written to a (programs along j, C, K) float32 buffer and summed by torch
(deterministic: no atomics). Per-channel sites with spatial dims take BC = 1 and
BJ contiguous elements of one channel; dense (N, C) sites take BC up to 64 adjacent
channels (coalesced along C); layer sharing is one flat column.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from actlab._cpp import LoadedOnce, env_enables

CPU_VAR = "ACTLAB_TRITON_CPU"
BLOCK = 1024  # elements per program: memory-bound kernels want a few thousand bytes in flight
_MAX_BC = 64

_cpu = env_enables(os.environ.get(CPU_VAR, "0"))


def interpreting() -> bool:
    """Whether Triton runs its kernels in its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def importable() -> bool:
    """Whether the triton package is installed (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def takes(x: Tensor) -> bool:
    """Whether a call on ``x`` belongs to the Triton kernels: CUDA, or the CPU under :func:`on_cpu`."""
    return x.is_cuda or (_cpu and x.is_cpu)


def cpu_forced() -> bool:
    return _cpu


@contextmanager
def on_cpu() -> Iterator[None]:
    """Send float32 CPU calls to the Triton kernels, run by the interpreter, inside the block.

    The interpreter must be on before the kernel modules are imported (triton decides per
    kernel at decoration time); :func:`ensure_interpreter` does that where nothing was
    imported yet, and this raises where the kernels were already compiled for a GPU."""
    global _cpu
    ensure_interpreter()
    before, _cpu = _cpu, True
    try:
        yield
    finally:
        _cpu = before


def ensure_interpreter() -> None:
    """Turn Triton's interpreter on for kernel modules not imported yet; an error where any
    was imported without it (its kernels are compiled for a GPU and cannot take CPU tensors)."""
    if interpreting():
        return
    if any(library.loaded for library in _LIBRARIES):
        raise RuntimeError("the Triton kernels were imported without TRITON_INTERPRET=1 and cannot run on the "
                           "CPU in this process")
    os.environ["TRITON_INTERPRET"] = "1"


class TritonLibrary(LoadedOnce):
    """Python modules of Triton kernels that register ``actlab_triton`` operators, imported once.

    Like :class:`actlab._cpp.CppLibrary`: :meth:`load` is True once every module imported, and
    False after one warning when triton is missing or a module fails (callers keep their reference).
    """

    def __init__(self, name: str, modules: list[str]) -> None:
        super().__init__()
        self.name, self.modules = name, modules
        _LIBRARIES.append(self)

    def _try_load(self) -> None:
        if not importable():
            self._ok, self.error = False, "triton is not installed"
        else:
            try:
                for module in self.modules:
                    importlib.import_module(module)
                self._ok = True
                return
            except Exception as exc:  # noqa: BLE001 - any import failure means: use the reference
                self._ok, self.error = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        warnings.warn(f"actlab: the {self.name} Triton kernels are not available ({self.error}); "
                      "using the PyTorch reference", RuntimeWarning, stacklevel=4)


_LIBRARIES: list[TritonLibrary] = []


@dataclass(frozen=True)
class Tiles:
    """How a per-unit kernel covers an input; see the module docstring."""

    c: int  # columns: the channels, 1 for layer sharing
    s: int  # elements per (n, c) run: the product of the dims after the channels
    n_j: int  # rows: N * S
    bj: int
    bc: int
    flat: bool  # layer sharing: offsets are the rows themselves

    @property
    def grid(self) -> tuple[int, int]:
        return (-(-self.n_j // self.bj), -(-self.c // self.bc))

    def meta(self) -> dict[str, int | bool]:
        """The keyword arguments of a kernel launch that ``tile`` reads."""
        return {"C": self.c, "S": self.s, "n_j": self.n_j, "BJ": self.bj, "BC": self.bc, "FLAT": self.flat}

    def partials(self, k: int, like: Tensor) -> Tensor:
        """The (programs along j, C, k) float32 buffer of per-program parameter-gradient sums."""
        return torch.empty(self.grid[0], self.c, k, dtype=torch.float32, device=like.device)


def tiles(x: Tensor, n_units: int, block: int = BLOCK) -> Tiles:
    """The tiling of ``x`` (contiguous) for parameters per unit along dim 1 (``n_units`` > 1) or shared."""
    if n_units == 1:
        return Tiles(1, max(x.numel(), 1), x.numel(), block, 1, True)
    c = x.shape[1]
    s = 1
    for d in x.shape[2:]:
        s *= d
    if s == 1:
        bc = min(_next_pow2(c), _MAX_BC)
        return Tiles(c, 1, x.shape[0], max(block // bc, 16), bc, False)
    return Tiles(c, s, x.shape[0] * s, block, 1, False)


def _next_pow2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def same_device(x: Tensor, *params: Tensor | None) -> bool:
    """Every given parameter is float32 on ``x``'s device."""
    return all(p is None or (p.dtype == torch.float32 and p.device == x.device) for p in params)


def device_guard(x: Tensor):
    """Launches go to the current CUDA device: make it ``x``'s (a no-op on the CPU)."""
    return torch.cuda.device(x.device) if x.is_cuda else nullcontext()
