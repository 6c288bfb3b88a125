"""Every learnable family exports in eval mode: torch.jit.trace, torch.export and ONNX (onnxruntime)."""

import warnings

import pytest
import torch
from torch import nn

import actlab
from actlab.compress import export_onnx, onnx_session

FAMILIES = ["spline", "spline(order=3)", "rational", "slaf", "slaf(basis=chebyshev,hybrid=true,standardize=true)",
            "subnet", "subnet(depth=2)"]


def _model(spec: str) -> nn.Module:
    spec = spec[:-1] + ",sharing=channel)" if "(" in spec else f"{spec}(sharing=channel)"
    act = actlab.make_activation(spec, actlab.Site(4, "conv"))
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), act)
    model(torch.randn(8, 2, 5, 5))  # a training step's statistics (slaf standardize)
    return model.eval()


@pytest.mark.parametrize("spec", FAMILIES)
def test_learnable_family_traces_to_plain_ops_that_save_and_load(spec, tmp_path):
    model, x, other = _model(spec), torch.randn(3, 2, 5, 5), 2 * torch.randn(6, 2, 5, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, x)
    assert not [n for n in traced.inlined_graph.nodes() if n.kind() == "prim::PythonOp"]
    torch.jit.save(traced, tmp_path / "m.pt")  # fails on an opaque Python call
    assert torch.allclose(torch.jit.load(tmp_path / "m.pt")(other), model(other), atol=1e-5)


@pytest.mark.parametrize("spec", FAMILIES)
def test_learnable_family_exports_with_torch_export_in_aten_ops(spec):
    model, x, other = _model(spec), torch.randn(3, 2, 5, 5), 2 * torch.randn(6, 2, 5, 5)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not [t for t in targets if "actlab" in t]  # the program runs without actlab
    assert torch.allclose(program.module()(other), model(other), atol=1e-5)


@pytest.mark.parametrize("spec", FAMILIES)
def test_learnable_family_exports_to_onnx_matching_onnxruntime(spec, tmp_path):
    pytest.importorskip("onnxruntime")
    model, x = _model(spec), 2 * torch.randn(6, 2, 5, 5)
    path = export_onnx(model, tmp_path / "m.onnx", torch.randn(2, 2, 5, 5))
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    assert abs(got - model(x).detach().numpy()).max() < 1e-4
