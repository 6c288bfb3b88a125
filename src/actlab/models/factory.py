"""The model registry and ``make_model(spec, ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from actlab._registry import Registry, unknown_name_message
from actlab.activations.registry import activation_factory
from actlab.activations.sites import Site
from actlab.errors import SpecError
from actlab.spec import name_and_options

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def make_model(
    spec: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    activation: str | Callable[[Site], nn.Module] = "relu",
) -> nn.Module:
    """Build a model from a spec such as ``mlp(widths=[64,64])`` or ``cnn(pool=true)``."""
    name, kwargs = name_and_options(spec, "model")
    builder = MODELS.get(name)
    valid = [p for p in inspect.signature(builder).parameters][3:]
    for key in kwargs:
        if key not in valid:
            raise SpecError(unknown_name_message(f"parameter of model {name}", key, valid))
    act = activation_factory(activation) if isinstance(activation, str) else activation
    try:
        return builder(tuple(input_shape), int(num_classes), act, **kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"bad parameters for model {name}: {exc}") from None

