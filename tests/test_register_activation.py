"""A user's own fixed activation or learnable family, registered by name, works everywhere a spec does."""

import pytest
import torch
from torch import nn

import actlab
from actlab.activations.registry import ACTIVATIONS


@pytest.fixture
def registry_snapshot():
    before = dict(ACTIVATIONS._items)
    yield
    ACTIVATIONS._items.clear()
    ACTIVATIONS._items.update(before)


def test_registered_class_is_a_fixed_activation_with_checked_options(registry_snapshot):
    @actlab.register_activation("shifted_relu_test")
    class ShiftedReLU(nn.Module):
        """relu(x - shift)."""

        def __init__(self, shift: float = 0.5) -> None:
            super().__init__()
            self.shift = shift

        def forward(self, x):
            return torch.relu(x - self.shift)

    act = actlab.make_activation("shifted_relu_test(shift=1)")
    assert isinstance(act, ShiftedReLU) and act.shift == 1
    assert torch.equal(act(torch.tensor([0.5, 3.0])), torch.tensor([0.0, 2.0]))
    with pytest.raises(actlab.SpecError, match="shift"):
        actlab.make_activation("shifted_relu_test(shfit=1)")
    with pytest.raises(actlab.SpecError, match="is taken"):
        actlab.register_activation("relu")(ShiftedReLU)


def test_registered_learnable_family_trains_converts_and_compresses(registry_snapshot):
    class Swishy(nn.Module):
        def __init__(self, n_units: int) -> None:
            super().__init__()
            self.beta = nn.Parameter(torch.ones(n_units))

        def forward(self, x):
            beta = self.beta.reshape(-1, *([1] * (x.dim() - 2))) if self.beta.numel() > 1 else self.beta
            return x * torch.sigmoid(beta * x)

    @actlab.register_activation("swishy_test")
    def swishy(site=None, /, sharing: str = "layer"):
        return Swishy(site.num_features if sharing == "channel" and site else 1)

    model = actlab.make_model("mlp", (4,), 3, "swishy_test(sharing=channel)")
    x = torch.randn(32, 4)
    model(x).sum().backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "beta" in n)
    converted, table = actlab.convert(nn.Sequential(nn.Linear(4, 5), nn.ReLU()), "swishy_test(sharing=channel)",
                                      example_input=x)
    assert table[0].parameters == 5
    small, report = actlab.compress_model(converted.eval(), knots=64, calibration=x, fast="eager")
    assert report[0].channels == 5 and report[0].max_error < 1e-3
