"""Activations: one registry for fixed, learnable and expression activations."""

from actlab.activations import fixed as _fixed  # noqa: F401  (registers the fixed activations)
from actlab.activations import learnable as _learnable  # noqa: F401
from actlab.activations.expr import Expression
from actlab.activations.registry import ACTIVATIONS, activation_factory, canonical, make_activation, register_activation
from actlab.activations.sites import Site
from actlab.spec import parse

__all__ = [
    "ACTIVATIONS",
    "Expression",
    "Site",
    "activation_factory",
    "canonical",
    "make_activation",
    "parse",
    "register_activation",
]
