"""Every part registers what it provides: a broken registration fails here instead of shrinking
the parametrised tests (or skipping them) without a word."""

import pytest

from actlab.cli import main
from actlab.registries import registries

# The entries each part must provide; a registry may hold more (aliases, new entries).
EXPECTED = {
    "activations": {"relu", "tanh", "sigmoid", "gelu", "silu", "slaf", "spline", "rational", "subnet",
                    "theta_relu", "anneal"},
    "operators": {"add", "max", "relu", "tanh", "exp"},
    "datasets": {"mnist10k", "digits", "titanic", "banknote", "spirals", "moons", "mnist", "fashion_mnist",
                 "cifar10"},
    "models": {"mlp", "cnn", "resnet", "vit"},
    "lr_schedules": {"constant", "cosine", "step", "warmup_cosine"},
    "schedules": {"constant", "linear", "cosine", "exponential", "step"},
}


@pytest.mark.parametrize("kind", EXPECTED)
def test_every_part_registers_its_entries(kind):
    assert EXPECTED[kind] <= set(registries()[kind])


def test_actlab_list_prints_every_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(f"{kind}: " in out for kind in EXPECTED)
