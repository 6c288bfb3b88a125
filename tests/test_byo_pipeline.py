"""README "Use it in your own model": convert -> train -> compress -> save/load -> ONNX on a ResNet-18-like model."""

import pytest
import torch

import actlab
from actlab.compress import export_onnx, onnx_session
from byo_models import ResNet18Like


def test_readme_pipeline_on_resnet18_like(tmp_path):
    pytest.importorskip("onnxruntime")
    x = torch.randn(8, 3, 16, 16)
    model, sites = actlab.convert(ResNet18Like(), "spline(knots=16)", example_input=x[:1], sharing="channel")
    assert sites[0].original == "F.relu" and len(sites) == 17
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    for _ in range(2):
        opt.zero_grad()
        model(x).logsumexp(1).mean().backward()
        opt.step()
    small, report = actlab.compress_model(model.eval(), knots=64, calibration=x)
    assert len(report) == 17 and report.skipped == []
    assert torch.allclose(small(x), model(x), atol=0.05)
    again = actlab.load(actlab.save(small, tmp_path / "small.pt"), ResNet18Like()).eval()
    assert torch.equal(again(x), small(x))
    path = export_onnx(again, tmp_path / "small.onnx", x[:1])
    logits = onnx_session(path).run(None, {"input": x.numpy()})[0]
    assert abs(logits - small(x).detach().numpy()).max() < 1e-4
