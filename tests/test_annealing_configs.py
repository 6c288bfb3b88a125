"""The annealing experiment configs load and build every activation they name."""

from __future__ import annotations

from pathlib import Path

import pytest

import actlab.annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.experiments import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "src/actlab/experiments/configs").glob("anneal_*.toml"))


def test_the_five_annealing_configs_exist():
    assert [p.stem for p in CONFIGS] == [
        "anneal_any", "anneal_fixed0", "anneal_linear", "anneal_trainable_neuron", "anneal_trainable_shared",
    ]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_annealing_config_loads(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert any("theta_relu" in a or "anneal" in a for a in cfg.activations)
