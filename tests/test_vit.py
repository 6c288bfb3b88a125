"""The ``vit`` model: shapes on MNIST and CIFAR inputs, one activation site per block, training."""

import pytest
import torch
from torch import nn

from actlab.activations.sites import Site, activation_sites, find_activations
from actlab.errors import ActlabError, SpecError
from actlab.models import make_model

MNIST, CIFAR = (1, 28, 28), (3, 32, 32)


@pytest.mark.parametrize("shape", [MNIST, CIFAR, (28, 28)])
def test_the_default_vit_maps_mnist_and_cifar_batches_to_logits(shape):
    model = make_model("vit", shape, 10)
    assert model(torch.randn(3, *shape)).shape == (3, 10)
    tokens = (shape[-1] // 4) ** 2  # 4x4 patches: 7x7 tokens for MNIST, 8x8 for CIFAR
    assert model.pos.shape == (1, tokens, 64)


def test_every_block_creates_its_mlp_activation_site_once_with_the_hidden_width():
    sites = []

    def factory(site: Site) -> nn.Module:
        sites.append(site)
        return nn.GELU()

    model = make_model("vit(dim=32,depth=3,heads=2,mlp_ratio=3)", MNIST, 10, factory)
    assert sites == [Site(96, "dense", i) for i in range(3)]
    assert list(find_activations(model)) == [f"blocks.{i}.act" for i in range(3)]  # attention is no site
    learnable = make_model("vit(dim=32,depth=3,heads=2)", MNIST, 10, "slaf(degree=2,sharing=channel)")
    assert [m.n_units for m in activation_sites(learnable).values()] == [64] * 3


def test_a_channel_shared_site_gives_every_hidden_feature_its_own_curve():
    torch.manual_seed(0)
    model = make_model("vit(dim=8,depth=1,heads=2)", MNIST, 10, "slaf(degree=3,sharing=channel)")
    act = model.blocks[0].act
    with torch.no_grad():
        act.coef.add_(0.5 * torch.randn_like(act.coef))  # make the 16 feature curves differ
    seen = {}
    act.register_forward_hook(lambda m, args, out: seen.update(x=args[0].detach(), y=out.detach()))
    model(torch.randn(2, *MNIST))
    x, y = seen["x"], seen["y"]
    assert x.shape == (2 * 49, 16)  # tokens in the batch, hidden features on dim 1
    for j in range(16):
        torch.testing.assert_close(y[:, j], act.curve(x[:, j])[j])


@pytest.mark.parametrize("activation", ["relu", "gelu", "slaf(sharing=channel)", "spline"])
def test_a_few_training_steps_lower_the_loss_on_a_tiny_batch(activation):
    torch.manual_seed(0)
    model = make_model("vit", MNIST, 10, activation)
    x, y = torch.randn(8, *MNIST), torch.arange(8) % 10
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("spec, error, match", [
    ("vit(patch=5)", ActlabError, "divisible by the patch, got 28x28"),
    ("vit(dim=30,heads=4)", SpecError, "multiple of heads"),
    ("vit(depth=0)", SpecError, "must be positive"),
])
def test_bad_vit_options_are_one_line_errors(spec, error, match):
    with pytest.raises(error, match=match):
        make_model(spec, MNIST, 10)


def test_vit_rejects_inputs_that_are_not_images():
    with pytest.raises(ActlabError, match="needs image inputs"):
        make_model("vit", (20,), 2)
