"""Every registered model, built with fixed and learnable activations: shapes, sites, gradients."""

import pytest
import torch

from actlab.activations.sites import Site, activation_sites
from actlab.models import MODELS, count_parameters, make_model

INPUT = (3, 12, 12)  # an image every model takes (the CNN needs at least 8x8)


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("activation", ["relu", "slaf(degree=2)"])
def test_every_model_maps_a_batch_to_logits_and_trains_every_parameter(name, activation):
    model = make_model(name, INPUT, 5, activation)
    x = torch.randn(4, *INPUT)
    logits = model(x)
    assert logits.shape == (4, 5)
    logits.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_makes_one_activation_per_site_with_its_width(name):
    sites = []

    def factory(site: Site) -> torch.nn.Module:
        sites.append(site)
        return torch.nn.ReLU()

    model = make_model(name, INPUT, 5, factory)
    assert sites and len({s.index for s in sites}) == len(sites)  # each site numbered once
    widths = [s.num_features for s in sites]
    assert all(w >= 1 for w in widths)
    learnable = make_model(name, INPUT, 5, "slaf(degree=2)")
    assert len(activation_sites(learnable)) == len(sites)
    model(torch.randn(2, *INPUT))  # the factory's sites fit the layers they follow


def test_an_unknown_model_names_the_closest():
    with pytest.raises(KeyError, match="Did you mean 'resnet'"):
        make_model("resnt", INPUT, 5)
