"""C++ kernels built at run time: once per process, cached on disk, always optional.

A kernel library is a set of C++ sources that register operators with
``TORCH_LIBRARY`` (and, for a Python module, pybind functions);
:class:`CppLibrary` compiles it with ``torch.utils.cpp_extension.load`` the
first time it is needed (the build is cached in the torch extensions
directory, so later processes only load it) and the operators then live in
``torch.ops.<namespace>``. Every caller keeps
its PyTorch reference path: a failed build warns once and the reference runs,
and ``ACTLAB_KERNELS=0`` (or :func:`set_kernels_enabled`) turns all kernels
off, for debugging and for testing the references.

By default the source is compiled for the SIMD level torch itself detected
(``torch.backends.cpu.get_cpu_capability()``) and the level is part of the
build name, so a cache shared between machines never runs AVX-512 code on a
CPU without it. A library that picks its instruction set at run time (per-function
target attributes) gives its own ``cflags`` instead and is one build for every
CPU. No ``-ffast-math``: NaN and inf must behave as in PyTorch.
"""

from __future__ import annotations

import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

ENV_VAR = "ACTLAB_KERNELS"


def env_enables(value: str | None) -> bool:
    """How ``ACTLAB_KERNELS`` reads: unset or anything but 0/false/off/no turns kernels on."""
    return value is None or value.strip().lower() not in ("0", "false", "off", "no")


_enabled = env_enables(os.environ.get(ENV_VAR))

# Target flags per capability; the AVX-512 set is what Skylake-X and Zen 4 share.
_ISA_FLAGS = {
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
    "avx2": ["-mavx2", "-mfma"],
    "base": [],
}


def assume_constant_result(fn: Callable) -> Callable:
    """``torch.compiler.assume_constant_result`` without importing ``torch._dynamo`` (~2 s) at import time.

    Dynamo's decorator only sets this marker, which it reads when it traces a call;
    ``tests/test_startup.py`` checks that the two agree.
    """
    fn._dynamo_marked_constant = True
    return fn


def kernels_enabled() -> bool:
    """Whether compiled kernels may run (``ACTLAB_KERNELS`` unset or not 0/false/off/no)."""
    return _enabled


def set_kernels_enabled(flag: bool) -> None:
    """Turn every compiled kernel on or off for this process."""
    global _enabled
    _enabled = bool(flag)


@contextmanager
def kernels_disabled() -> Iterator[None]:
    """Run the block on the PyTorch reference paths."""
    before = _enabled
    set_kernels_enabled(False)
    try:
        yield
    finally:
        set_kernels_enabled(before)


def isa() -> str:
    """The instruction set the kernels are built for: avx512, avx2 or base (portable C++)."""
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if capability.startswith("AVX512"):
        return "avx512"
    return "avx2" if capability == "AVX2" else "base"


class LoadedOnce:
    """Kernels made ready once per process (built, imported), thread-safely: :meth:`load` is True
    once that worked, and False for good, after one warning from ``_try_load``, when it did not."""

    def __init__(self) -> None:
        self._ok: bool | None = None  # None: not tried yet
        self._lock = threading.Lock()  # two threads' first calls must not build twice
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._ok)

    def load(self) -> bool:
        if self._ok is None:
            with self._lock:
                if self._ok is None:
                    self._try_load()
        return self._ok

    def _try_load(self) -> None:
        raise NotImplementedError


class CppLibrary(LoadedOnce):
    """C++ sources, built into one shared library on the first :meth:`load`.

    ``on_load`` runs once after a successful build, e.g. to register the fake
    (shape-only) implementations that ``torch.compile`` needs. With
    ``python_module`` the library is a Python module (pybind functions), kept in
    :attr:`module`. ``cflags`` replaces the default ``-O3`` plus the flags of
    :func:`isa`; ``fallback`` says in the warning what runs instead.
    """

    def __init__(self, name: str, sources: list[Path], on_load: Callable[[], None] | None = None, *,
                 python_module: bool = False, cflags: list[str] | None = None,
                 fallback: str = "the slower PyTorch implementation") -> None:
        super().__init__()
        self.name, self.sources, self.on_load = name, sources, on_load
        self.python_module, self.cflags, self.fallback = python_module, cflags, fallback
        self.module = None

    def _try_load(self) -> None:
        """Build (or load the cached build); on failure the reference runs after one warning."""
        try:
            self._build()
            self._ok = True
        except Exception as exc:  # noqa: BLE001 - any build or load failure means: use the reference
            self._ok, self.module, self.error = False, None, _summary(exc)
            warnings.warn(f"actlab: building the {self.name} C++ kernels failed ({self.error}); "
                          f"using {self.fallback}", RuntimeWarning, stacklevel=4)

    def _build(self) -> None:
        from torch.utils import cpp_extension

        ensure_ninja_on_path()
        name, cflags, ldflags = self.name, self.cflags, []
        if cflags is None:
            level = isa()
            name, cflags = f"{name}_{level}", ["-O3", *_ISA_FLAGS[level]]
            if torch.backends.openmp.is_available():
                # at::parallel_for is an inline `#pragma omp parallel` in ATen's headers:
                # without -fopenmp it compiles to a serial loop and the kernels use one thread.
                cflags, ldflags = [*cflags, "-fopenmp"], ["-fopenmp"]
        with exclusive_build(name):
            module = cpp_extension.load(name=name, sources=[str(s) for s in self.sources], extra_cflags=cflags,
                                        extra_ldflags=ldflags, is_python_module=self.python_module, verbose=False)
        self.module = module if self.python_module else None
        if self.on_load is not None:
            self.on_load()


@contextmanager
def exclusive_build(name: str) -> Iterator[None]:
    """Build extension ``name`` holding an OS file lock on its build folder.

    torch marks a build in progress with a ``lock`` file and waits, with no
    limit and no message, until it is gone. A build that was killed (Ctrl-C,
    kill -9, a test of resuming) leaves it behind, and every later process
    then hangs at its first kernel call. actlab builds only under this lock,
    which the OS drops when its holder dies, so a ``lock`` file found while
    holding it was left by a dead build and is removed. Where the lock is
    not available (no ``fcntl``, torch's folder helper gone), the build goes
    on as torch's.
    """
    try:
        import fcntl

        from torch.utils.cpp_extension import _get_build_directory

        folder = Path(_get_build_directory(name, verbose=False))
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / "actlab.flock", "w")  # noqa: SIM115 - held across the yield
    except (ImportError, AttributeError, OSError):
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (folder / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_ninja_on_path() -> None:
    """torch builds extensions with ninja found on PATH; the ``ninja`` wheel that actlab depends
    on puts it in the environment's bin folder, which is not on PATH unless it is activated."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _summary(exc: Exception) -> str:
    """One line for the warning: the compiler's first error if there is one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return f"{type(exc).__name__}: {(errors or lines or [''])[0][:300]}"
