"""Running the Triton kernels in tests: on CPU tensors in Triton's interpreter, and on CUDA where present.

``DEVICES`` parametrises a test over where the kernels run: ``"interpret"`` (float32
CPU tensors sent to the Triton kernels by :func:`actlab._triton.on_cpu`) always, and
``"cuda"`` (marked ``cuda``) when a GPU is present. ``kernel_device(name)`` is the
context for one: inside it, float32 tensors made on ``device`` take the Triton path.
The learnable families' kernel tests share the helpers below it (module, input, runs, comparison).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext

import pytest
import torch

from actlab import _triton
from actlab.activations import Site, make_activation
from actlab.activations.learnable import _kernels

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


def activation(spec: str, channels: int = 3, *, sharing: str | None = None, seed: int = 0) -> torch.nn.Module:
    """``spec`` (``sharing=`` added if given) at a conv site of ``channels``, parameters moved by 0.1 seeded randn."""
    if sharing is not None:
        spec = f"{spec[:-1]},sharing={sharing})" if "(" in spec else f"{spec}(sharing={sharing})"
    module = make_activation(spec, Site(channels, "conv"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return module


def input_with(shape: tuple[int, ...], special: list[float], *, fourier: bool = False,
               seed: int | None = 1) -> torch.Tensor:
    """2.5 randn (``seed=None``: the global generator) with ``special`` first, within +-300 for ``fourier``."""
    # fourier's far values stop at 300: beyond, rounding z = x / range to float32 alone moves the phase
    # pi k z / 2 by 1e-4 against float64
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    x = 2.5 * torch.randn(shape, generator=generator)
    values = [max(min(v, 300.0), -300.0) if fourier else v for v in special][: x.numel()]
    x.view(-1)[: len(values)] = torch.tensor(values)
    return x


def run(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
        params: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Output, input gradient and ``params``' gradients (default: all) of one forward + backward, on the CPU."""
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    y = module(x)
    y.backward(g)
    grads = [p.grad for p in module.parameters()] if params is None else [getattr(module, p).grad for p in params]
    return [t.detach().cpu() for t in [y, x.grad] + grads]


def float64(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor,
            params: Sequence[str] | None = None) -> list[torch.Tensor]:
    """:func:`run` on a float64 copy of ``module`` on the CPU (which never takes a kernel), rounded to float32."""
    return [t.float() for t in run(copy.deepcopy(module).cpu().double(), x.cpu().double(), g.cpu().double(), params)]


def on_kernels(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor, device: str, monkeypatch,
               params: Sequence[str] | None = None) -> list[torch.Tensor]:
    """The float32 :func:`run` on ``kernel_device(device)``, asserting that forward and backward took the Triton ops."""
    served = []
    ops = _kernels._ops
    monkeypatch.setattr(_kernels, "_ops", lambda t: served.append(ops(t).name) or ops(t))
    with kernel_device(device) as dev:
        got = run(module.to(dev), x.to(dev), g.to(dev), params)
    assert served == ["actlab_triton", "actlab_triton"]
    return got


def assert_match(got: Sequence[torch.Tensor], ref: Sequence[torch.Tensor], names: Sequence[str],
                 rtol: float = 3e-5) -> None:
    """Equal NaN and inf where ``ref`` (in float32) has them; elsewhere float32's error on the tensor's scale."""
    assert len(got) == len(ref) <= len(names), names
    for name, a, b in zip(names, got, ref):
        a, b = a.detach().cpu(), b.detach().cpu().float()
        assert torch.equal(torch.isnan(a), torch.isnan(b)), name
        assert torch.equal(torch.isinf(a), torch.isinf(b)) and torch.equal(a[torch.isinf(b)], b[torch.isinf(b)]), name
        fin = torch.isfinite(b)
        scale = float(b[fin].abs().max()) if fin.any() else 1.0
        torch.testing.assert_close(a[fin], b[fin], rtol=rtol, atol=rtol * max(scale, 1e-3), msg=name)


def graphs(fw: list, bw: list):
    """An aot_autograd backend appending each forward (``fw``) and backward (``bw``) graph's call_function targets."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    def keep(into):
        def compiler(gm, inputs):
            into.append({n.target for n in gm.graph.nodes if n.op == "call_function"})
            return make_boxed_func(gm.forward)
        return compiler

    return aot_autograd(fw_compiler=keep(fw), bw_compiler=keep(bw))
