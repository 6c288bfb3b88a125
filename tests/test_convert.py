"""actlab.convert on models a user brings: reused modules, functional calls, channels-last tokens."""

import pytest
import torch
from torch import nn

import actlab
from byo_models import ResNet18Like, ViTBlock


def test_convert_resnet18_like_gives_one_activation_per_site_including_reused_and_functional():
    model, x = ResNet18Like(), torch.randn(2, 3, 16, 16)
    new, table = actlab.convert(model, "spline(knots=8)", example_input=x, sharing="channel")
    assert len(table) == 17  # F.relu in the stem + 2 uses of self.relu in each of 8 blocks
    assert table[0].original == "F.relu" and table[0].width == 8
    names = {r.name for r in table}
    assert {"layer1.0.relu", "layer1.0.relu_1", "layer4.1.relu_1"} <= names
    sites = [m for m in new.modules() if getattr(m, "is_activation", False)]
    assert len({id(m) for m in sites}) == 17
    assert all(r.parameters == r.width * 8 for r in table)
    assert {r.width for r in table} == {8, 16, 32, 64}
    new(x).sum().backward()  # trains end to end
    assert not any(isinstance(m, nn.ReLU) for m in new.modules())


def test_convert_initialised_as_relu_keeps_the_models_outputs():
    model, x = ResNet18Like().eval(), torch.randn(2, 3, 16, 16)
    new, _ = actlab.convert(model, "spline(knots=256,range=8)", example_input=x)
    assert torch.allclose(new(x), model(x), atol=0.05)


def test_convert_share_reused_keeps_one_activation_per_module():
    new, table = actlab.convert(ResNet18Like(), "slaf", example_input=torch.randn(1, 3, 16, 16),
                                share_reused=True)
    assert len(table) == 9
    assert [r.name for r in table][:3] == ["relu", "layer1.0.relu", "layer1.1.relu"]


def test_convert_without_functional_calls_or_reuse_keeps_the_class():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2), nn.Tanh())
    new, table = actlab.convert(model, "rational", example_input=torch.randn(3, 4), sharing="neuron")
    assert isinstance(new, nn.Sequential) and [r.width for r in table] == [6, 2]
    assert isinstance(model[1], nn.ReLU)  # the original is untouched


def test_convert_vit_block_puts_per_channel_parameters_on_the_last_dim():
    model, x = ViTBlock(), torch.randn(2, 5, 16)
    new, table = actlab.convert(model, "rational", example_input=x, sharing="channel")
    assert [(r.name, r.original, r.width) for r in table] == [("mlp.1", "GELU", 32)]
    assert new.mlp[1].channel_dim == -1 and new.mlp[1].n_units == 32
    assert new(x).shape == (2, 3)
    first = actlab.convert(model, "rational", example_input=x, sharing="channel", channels="first")[1]
    assert first[0].width == 5


def test_convert_types_selects_which_activations_are_replaced():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh())
    _, table = actlab.convert(model, "slaf", example_input=torch.randn(2, 4), types=(nn.Tanh,))
    assert [r.original for r in table] == ["Tanh"]


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin, self.act = nn.Linear(4, 4), nn.ReLU()

    def forward(self, x):
        if x.sum() > -1e9:  # data-dependent control flow: torch.fx cannot trace it
            x = torch.nn.functional.relu(self.lin(x))
        return self.act(x)


def test_convert_names_the_functional_call_when_the_model_does_not_trace():
    with pytest.raises(actlab.ActlabError, match=r"test_convert.py:\d+: .*functional.relu") as info:
        actlab.convert(_Untraceable(), "slaf", example_input=torch.randn(2, 4))
    assert "\n" not in str(info.value)


def test_convert_falls_back_to_hooks_when_the_model_does_not_trace():
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin, self.act = nn.Linear(4, 3), nn.GELU()

        def forward(self, x):
            return self.act(self.lin(x)) if x.sum() > -1e9 else x

    new, table = actlab.convert(Branchy(), "slaf(sharing=neuron)", example_input=torch.randn(2, 4))
    assert type(new).__name__ == "Branchy" and table[0].width == 3


def test_convert_rejects_a_bad_spec_before_running_the_model():
    with pytest.raises(actlab.UnknownNameError):
        actlab.convert(ResNet18Like(), "splin", example_input=torch.randn(1, 3, 8, 8))
