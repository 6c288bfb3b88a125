"""Running the Triton kernels in tests: on CPU tensors in Triton's interpreter, and on CUDA where present.

``DEVICES`` parametrises a test over where the kernels run: ``"interpret"`` (float32
CPU tensors sent to the Triton kernels by :func:`actlab._triton.on_cpu`) always, and
``"cuda"`` (marked ``cuda``) when a GPU is present. ``kernel_device(name)`` is the
context for one: inside it, float32 tensors made on ``device`` take the Triton path.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import pytest
import torch

from actlab import _triton

HAS_CUDA = torch.cuda.is_available()
needs_triton = pytest.mark.skipif(not _triton.importable(), reason="triton is not installed")
DEVICES = [pytest.param("interpret", marks=needs_triton),
           pytest.param("cuda", marks=[pytest.mark.cuda, needs_triton,
                                       pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")])]


@contextmanager
def kernel_device(name: str):
    """Yields the torch device whose float32 tensors take the Triton kernels inside the block."""
    if name == "cuda":
        with nullcontext():
            yield torch.device("cuda")
        return
    if not _triton.interpreting() and any(lib.loaded for lib in _triton._LIBRARIES):
        pytest.skip("the Triton kernels were compiled for the GPU in this process")
    with _triton.on_cpu():
        yield torch.device("cpu")
