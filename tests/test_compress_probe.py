"""Compression touches only elementwise nonlinear sites; GLU, Softmax, LayerScale are skipped with a reason."""

import torch
from torch import nn

import actlab
from actlab.compress import format_report
from actlab.compress.probe import not_elementwise
from byo_models import LayerScale, ViTBlock


def test_probe_accepts_elementwise_and_rejects_mixing_shape_changing_and_linear_modules():
    x = torch.randn(2, 8, 5)
    assert not_elementwise(nn.GELU(), x) is None
    assert not_elementwise(nn.SiLU(inplace=True), x) is None
    assert "shape" in not_elementwise(nn.GLU(dim=1), x)
    assert "elementwise" in not_elementwise(nn.Softmax(dim=1), x)
    assert "linear" in not_elementwise(LayerScale(5), x)
    assert not_elementwise(actlab.make_activation("slaf(sharing=channel)", actlab.Site(8)), x) is None


def test_compress_vit_block_compresses_gelu_and_skips_glu_and_layerscale():
    model, x = ViTBlock().eval(), torch.randn(4, 5, 16)
    new, report = actlab.compress_model(model, knots=64, calibration=x, fast="eager")
    assert [r.name for r in report] == ["mlp.1"]
    skipped = {s.name: s.reason for s in report.skipped}
    assert set(skipped) == {"ls1", "ls2", "gate.1"}
    assert "shape" in skipped["gate.1"] and "linear" in skipped["ls1"]
    assert isinstance(new.gate[1], nn.GLU) and isinstance(new.ls1, LayerScale)
    assert torch.allclose(new(x), model(x), atol=1e-2)
    assert "skipped: changes the shape" in format_report(report)


def test_compress_records_inplace_activation_inputs_before_they_are_overwritten():
    model = nn.Sequential(nn.Linear(3, 4), nn.SiLU(inplace=True))
    x = torch.randn(256, 3)
    new, report = actlab.compress_model(model, knots=64, calibration=x, fast="eager")
    pre = model[0](x).detach()
    assert report[0].lo <= float(pre.min()) + 0.5  # SiLU's outputs never go below -0.28
    assert torch.allclose(new(x), model(x), atol=1e-2)
