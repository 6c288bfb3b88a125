"""The one skip policy of the kernel tests (both families, every C++ library).

Where no C++ compiler is installed, the tests that need a built kernel skip;
with a compiler, a failed build fails them with the compiler's first error.
Tests of the fallbacks run everywhere.
"""

from __future__ import annotations

import shutil

import pytest

from actlab._cpp import CppLibrary

NO_COMPILER = "no C++ compiler to build the kernels with"


def require_built(library: CppLibrary) -> None:
    """Skip without a compiler; otherwise build ``library`` (once) and fail if that does not work."""
    if shutil.which("c++") is None:
        pytest.skip(NO_COMPILER)
    assert library.load(), f"the {library.name} kernels failed to build: {library.error}"


def assert_thread_count_free(run) -> None:
    """``run()`` (a tuple of tensors) gives the same bits at 1 and at 2 intra-op threads."""
    import torch

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two, strict=True):
        assert torch.equal(a, b)
