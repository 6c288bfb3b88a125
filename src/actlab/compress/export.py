"""Deploying compressed models without actlab: ONNX files of standard operators.

In tracing and export, the compressed activations evaluate their pure-PyTorch
formula (floor, clamp, nan_to_num, gather, multiply-add) instead of the C++
kernel, so a compressed model exports to plain ONNX that any runtime runs,
and to :func:`torch.export.export` programs. ONNX and ONNX Runtime are the
optional extra ``pip install actlab[export]``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from actlab.errors import ActlabError

STANDARD_DOMAINS = ("", "ai.onnx")
_INSTALL_HINT = "pip install actlab[export]"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ActlabError(f"{module} is not installed; install it with: {_INSTALL_HINT}") from None


def _custom_ops(nodes: Iterable) -> list[str]:
    """``domain::op_type`` of every node outside the standard domains, subgraphs (If, Loop) included."""
    found = []
    for node in nodes:
        if node.domain not in STANDARD_DOMAINS:
            found.append(f"{node.domain}::{node.op_type}")
        for attr in node.attribute:
            for graph in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                found.extend(_custom_ops(graph.node))
    return sorted(set(found))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example_input: Tensor | tuple[Tensor, ...],
    *,
    dynamic_batch: bool = True,
    opset: int | None = None,
) -> Path:
    """Write ``model`` to one self-contained ONNX file of standard operators and return its path.

    The model is exported in eval mode (each module's mode is restored after);
    with ``dynamic_batch`` dim 0 of every input may take any size, else the
    file accepts only the example's shapes. ``opset`` None takes the
    exporter's default. The file is checked with ``onnx.checker``, and a graph
    with operators outside the standard ONNX domain raises :class:`ActlabError`.
    """
    onnx = _require("onnx")
    _require("onnxscript")  # what the exporter translates with; fail here with the install hint
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if not args or not all(isinstance(a, Tensor) and a.ndim >= 1 for a in args):
        raise ActlabError("example_input must be a tensor, or a tuple of tensors, with a batch dimension")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = ["input"] if len(args) == 1 else [f"input{i}" for i in range(len(args))]
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in args) if dynamic_batch else None
    if dynamic_batch and any(a.shape[0] == 1 for a in args):
        # torch.export specialises size-1 dims; some models (timm's ConvNeXt) then fail to keep
        # the batch dynamic, so trace with the example repeated to batch 2
        args = tuple(torch.cat([a, a]) if a.shape[0] == 1 else a for a in args)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        # The torch.export-based exporter (dynamo=True, the default since torch 2.9): it handles
        # every compressed form and the models tested here, and a batch-1 example still gives a
        # dynamic batch. The TorchScript exporter (dynamo=False) is ~5x faster but deprecated and
        # announced for removal. external_data=False: one file, unless the weights pass 2 GB.
        torch.onnx.export(model, args, str(path), dynamo=True, external_data=False, verbose=False,
                          input_names=names, dynamic_shapes=dynamic, opset_version=opset)
    finally:
        for module, training in modes.items():
            module.training = training
    onnx.checker.check_model(str(path))  # by path, so that files over 2 GB are checked too
    custom = _custom_ops(onnx.load(str(path), load_external_data=False).graph.node)
    if custom:
        raise ActlabError(f"{path} uses operators outside standard ONNX: {', '.join(custom)}")
    return path


def onnx_session(path: str | Path, threads: int = 1, providers: Sequence[str] = ("CPUExecutionProvider",)):
    """An ONNX Runtime session on ``path`` with ``threads`` intra- and inter-op threads.

    Fixed thread counts make timings comparable with a PyTorch model run
    under ``torch.set_num_threads(threads)``.
    """
    ort = _require("onnxruntime")
    if threads < 1:
        raise ActlabError(f"threads must be at least 1, got {threads}")
    if not Path(path).is_file():
        raise ActlabError(f"no ONNX file at {path}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=list(providers))
