"""Bring your own model, on the real thing: torchvision's resnet18, timm's ViT and ConvNeXt.

torchvision does not import beside the torch 2.13.0 CPU build the main
environment pins, so these run in their own environment with torch 2.14.1,
torchvision 0.29.1 and timm: ``make test-zoo`` (``make test`` runs it too).
In an environment without them they are skipped.
"""

import pytest
import torch

import actlab
from actlab.compress import export_onnx, onnx_session

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")


def _train(model: torch.nn.Module, x: torch.Tensor, steps: int = 2) -> None:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(x).logsumexp(1).mean().backward()
        opt.step()
    model.eval()


def _onnx_matches(model: torch.nn.Module, x: torch.Tensor, path) -> float:
    pytest.importorskip("onnxruntime")
    path = export_onnx(model, path, x[:1])
    logits = onnx_session(path).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        return float(abs(logits - model(x).numpy()).max())


def _saved_loaded_and_exported(small: torch.nn.Module, build, x: torch.Tensor, tmp_path, name: str) -> None:
    """save -> load on a fresh ``build()`` gives the same outputs; ONNX Runtime within 1e-4."""
    again = actlab.load(actlab.save(small, tmp_path / f"{name}.pt"), build).eval()
    with torch.no_grad():
        assert torch.equal(again(x), small(x))
    assert _onnx_matches(again, x, tmp_path / f"{name}.onnx") < 1e-4


def test_readme_pipeline_on_torchvision_resnet18(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)

    def build():
        return torchvision.models.resnet18(weights=None, num_classes=10)

    model, sites = actlab.convert(build(), "spline(knots=16)", example_input=x[:1], sharing="channel")
    # the stem's relu and two uses of each BasicBlock's one self.relu: 1 + 8 * 2 sites, one activation each
    assert len(sites) == 17 and {s.family for s in sites} == {"spline"}
    assert [s.width for s in sites][:3] == [64, 64, 64] and sites[-1].width == 512
    _train(model, x)
    small, report = actlab.compress_model(model, knots=64, calibration=x)
    assert len(report) == 17 and all(r.exact for r in report)  # a linear spline is its own table
    with torch.no_grad():
        assert float((small(x) - model(x)).abs().max()) < 1e-4
    _saved_loaded_and_exported(small, build, x, tmp_path, "small")


def test_inplace_relus_of_resnet18_become_rationals_that_train_and_export(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    base = torchvision.models.resnet18(weights=None, num_classes=10)
    assert base.relu.inplace
    model, sites = actlab.convert(base, "rational", example_input=x[:1])
    assert len(sites) == 17
    _train(model, x, steps=1)
    assert _onnx_matches(model, x, tmp_path / "rational.onnx") < 1e-4


def test_timm_vit_gelus_get_per_channel_activations_on_the_token_dim_and_compress(tmp_path):
    torch.manual_seed(0)

    def build():
        return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                                 num_classes=10, depth=2)

    x = torch.randn(4, 3, 32, 32)
    model, sites = actlab.convert(build(), "rational", example_input=x[:1], sharing="channel")
    assert [s.original for s in sites] == ["GELU", "GELU"] and {s.width for s in sites} == {4 * 192}
    _train(model, x)
    small, report = actlab.compress_model(model, knots=64, calibration=x)
    assert len(report) == 2 and all(r.channels == 768 for r in report)
    skipped = {s.original for s in report.skipped}
    assert "Softmax" not in {r.original for r in report} and skipped <= {"Identity", "Softmax", "Dropout"}
    with torch.no_grad():
        assert float((small(x) - model(x)).abs().max()) < 0.05
    _saved_loaded_and_exported(small, build, x, tmp_path, "vit")


def test_timm_convnext_functional_gelus_train_compress_and_export(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    model, sites = actlab.convert(timm.create_model("convnext_atto", pretrained=False, num_classes=10),
                                  "slaf(degree=4,basis=chebyshev)", example_input=x[:1], sharing="channel")
    # timm's GELU module calls F.gelu, found by tracing; its conv MLPs are (N, C, H, W)
    assert len(sites) == 2 + 2 + 6 + 2 and all(s.original == "F.gelu" for s in sites)
    assert sites[0].width == 4 * 40  # the MLP's hidden width
    _train(model, x, steps=1)
    small, report = actlab.compress_model(model, knots=64, calibration=x)
    assert len(report) == len(sites)
    with torch.no_grad():
        assert float((small(x) - model(x)).abs().max()) < 0.05
    assert _onnx_matches(small, x, tmp_path / "convnext.onnx") < 1e-4
