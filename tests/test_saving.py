"""actlab.save / actlab.load: converted and compressed models round-trip through weights_only files."""

import pytest
import torch
from torch import nn

import actlab
from byo_models import ResNet18Like, ViTBlock


def _trained(model, x):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(2):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()
    return model.eval()


def test_converted_resnet_round_trips_through_a_weights_only_file(tmp_path):
    x = torch.randn(2, 3, 16, 16)
    model, _ = actlab.convert(ResNet18Like(), "slaf(degree=3)", example_input=x, sharing="channel")
    model = _trained(model, x)
    path = actlab.save(model, tmp_path / "m.pt")
    torch.load(path, weights_only=True)  # plain data: no code in the file
    loaded = actlab.load(path, ResNet18Like()).eval()
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("method", ["pwl", "cubic", "poly"])
def test_compressed_vit_round_trips(tmp_path, method):
    x = torch.randn(4, 5, 16)
    model, _ = actlab.convert(ViTBlock(), "rational", example_input=x, sharing="channel")
    size = {"degree": 6} if method == "poly" else {"knots": 16}
    small, _ = actlab.compress_model(model.eval(), method, calibration=x, fast="eager", **size)
    loaded = actlab.load(actlab.save(small, tmp_path / "c.pt"), ViTBlock).eval()
    assert type(loaded.mlp[1].inner) is type(small.mlp[1].inner)  # ChannelsMoved: channels last
    assert torch.allclose(loaded(x), small(x), atol=1e-6)


def test_compressed_actlab_model_round_trips_without_convert(tmp_path):
    build = lambda: actlab.make_model("mlp", (4,), 3, "slaf")  # noqa: E731
    x = torch.randn(64, 4)
    small, _ = actlab.compress_model(build().eval(), knots=32, calibration=x)
    loaded = actlab.load(actlab.save(small, tmp_path / "m.pt"), build).eval()
    assert torch.allclose(loaded(x), small(x))


def test_load_rejects_files_it_cannot_read_with_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(actlab.ActlabError, match="not a model file"):
        actlab.load(bad, nn.Linear(2, 2))
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(actlab.ActlabError, match="not written by actlab.save"):
        actlab.load(tmp_path / "other.pt", nn.Linear(2, 2))
    path = actlab.save(nn.Linear(2, 2), tmp_path / "lin.pt")
    with pytest.raises(actlab.ActlabError, match="does not fit this model"):
        actlab.load(path, nn.Linear(3, 2))
