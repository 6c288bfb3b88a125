"""The one activation registry and ``make_activation``.

Every activation — fixed (``relu``), parametrised (``leaky_relu(negative_slope=0.1)``),
learnable (``slaf(degree=4)``) or an expression of the search grammar
(``max(relu(x),cosh(elu(x)))``) — is created from a spec string here. A
registered factory has the signature ``factory(site, **kwargs) -> nn.Module``,
where ``site`` tells a learnable family how many channels or neurons its
activation site has, so that it can keep parameters per layer, channel,
neuron or group of channels.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Protocol

from torch import nn

from actlab._registry import Registry, unknown_name_message
from actlab.activations import ops
from actlab.activations.expr import Expression, compile_expression
from actlab.activations.sites import Site
from actlab.errors import SpecError, UnknownNameError
from actlab.spec import Call, Name, Node, Var, parse, to_python


class ActivationFactory(Protocol):
    def __call__(self, site: Site | None = None, /, **kwargs: object) -> nn.Module: ...


ACTIVATIONS: Registry[ActivationFactory] = Registry("activation")


def register_activation(name: str, *aliases: str) -> Callable:
    """Decorator: make an activation available by name in every spec (models, convert, search, CLI).

    Decorate either

    * a factory ``factory(site=None, /, **options) -> nn.Module``: ``site``
      (:class:`Site`, or None outside a model) gives the width, for a learnable
      family that keeps parameters per channel; or
    * an ``nn.Module`` class: its ``__init__`` keyword arguments are the spec's
      options, and it receives ``site=`` too when it has such a parameter.

    ``forward`` must map a tensor elementwise to one tensor of the same shape.
    A learnable family may subclass :class:`~actlab.activations.learnable.LearnableActivation`
    for curves and initial fits. Options are checked against the signature, so
    ``name(typo=1)`` fails with the valid names. The name must be new.

    >>> @register_activation("shifted_relu")
    ... def shifted_relu(site=None, /, shift: float = 0.5):
    ...     return ShiftedReLU(shift)
    """
    def add(obj: Callable) -> Callable:
        for key in (name, *aliases):
            if not isinstance(key, str) or not key.isidentifier():
                raise SpecError(f"an activation name must be an identifier, got {key!r}")
            if key in ACTIVATIONS:
                raise SpecError(f"activation name {key!r} is taken; choose another")
        factory = _class_factory(obj) if isinstance(obj, type) and issubclass(obj, nn.Module) else obj
        ACTIVATIONS.register(name, *aliases)(factory)
        return obj

    return add


def _class_factory(cls: type[nn.Module]) -> ActivationFactory:
    params = inspect.signature(cls).parameters
    takes_site = "site" in params

    def factory(site: Site | None = None, /, **kwargs: object) -> nn.Module:
        return cls(site=site, **kwargs) if takes_site else cls(**kwargs)

    # the spec's options are the class's keyword arguments: _call_factory checks them
    factory.__signature__ = inspect.Signature(
        [inspect.Parameter("site", inspect.Parameter.POSITIONAL_ONLY, default=None)]
        + [p for k, p in params.items() if k != "site"])
    factory.__doc__ = cls.__doc__
    return factory


# The largest sizes a spec may ask for: beyond them a family is slower than useful, or the
# request is a typo that would allocate terabytes (spline(knots=100000000)) or never finish.
LIMITS = {"knots": 4096, "degree": 32, "hidden": 1024, "depth": 16, "num": 24, "den": 24}
MAX_WIDTH = 1 << 20  # units of one site (channels or neurons)
MAX_PARAMETERS = 1 << 26  # per activation module: units x per-unit size


def _check_sizes(name: str, site: Site | None, kwargs: dict) -> None:
    for key, limit in LIMITS.items():
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > limit:
            raise SpecError(f"{name}({key}={value}) is too large; the limit is {limit}")
    width = 1 if site is None else site.num_features
    if not 1 <= width <= MAX_WIDTH:
        raise SpecError(f"a site of width {width}; it must be between 1 and {MAX_WIDTH}")
    per_unit = max([int(v) for k, v in kwargs.items() if k in LIMITS and isinstance(v, int)] or [1])
    groups = kwargs.get("groups")
    sets = groups if kwargs.get("sharing") == "group" and isinstance(groups, int) else width
    if kwargs.get("sharing", "layer") != "layer" and sets * per_unit > MAX_PARAMETERS:
        raise SpecError(f"{name} with sharing={kwargs['sharing']} on a site of width {width} would hold "
                        f"{sets * per_unit} parameters; the limit is {MAX_PARAMETERS}: use sharing=layer")


def _call_factory(name: str, factory: ActivationFactory, site: Site | None, kwargs: dict) -> nn.Module:
    _check_sizes(name, site, kwargs)
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    valid = [p for p in params if p != "site" and params[p].kind is not inspect.Parameter.POSITIONAL_ONLY]
    if not accepts_any:
        for key in kwargs:
            if key not in valid:
                raise SpecError(unknown_name_message(f"parameter of {name}", key, valid))
    try:
        return factory(site, **kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"bad parameters for {name}: {exc}") from None


def _is_expression(node: Node) -> bool:
    if isinstance(node, Var):
        return True
    if isinstance(node, Call):
        return node.name in ops.UNARY or node.name in ops.BINARY or node.name in ops.NARY
    return False


def make_activation(spec: str | nn.Module | type[nn.Module] | Callable, site: Site | None = None) -> nn.Module:
    """Create one activation module from a spec, marked ``is_activation = True``.

    ``spec`` may be a registered name, a name with keyword parameters, an
    expression of the search grammar, an ``nn.Module`` class, or a callable
    ``site -> nn.Module``. A module instance is returned as is (it will be
    shared, so prefer a spec or a class when every site needs its own
    parameters). The marker lets model surgery and reports find activation
    sites in any model.
    """
    module = _make(spec, site)
    module.is_activation = True
    return module


def _make(spec: str | nn.Module | type[nn.Module] | Callable, site: Site | None) -> nn.Module:
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        return spec()
    if callable(spec) and not isinstance(spec, str):
        return spec(site)
    node = parse(spec)
    if isinstance(node, Name) and node.name not in ACTIVATIONS and node.name in ops.UNARY:
        node = Call(node.name, (Var(),))  # a bare operator name means op(x)
    if isinstance(node, Name):
        return _call_factory(node.name, ACTIVATIONS.get(node.name), site, {})
    if isinstance(node, Call) and node.name in ACTIVATIONS and not node.args:
        kwargs = {k: to_python(v) for k, v in node.kwargs}
        return _call_factory(node.name, ACTIVATIONS.get(node.name), site, kwargs)
    if _is_expression(node):
        return Expression(compile_expression(node), str(node))
    if isinstance(node, Call):
        names = sorted(set(ACTIVATIONS.names()) | set(ops.operator_names()))
        if node.name in ACTIVATIONS:
            raise SpecError(f"{node.name} takes keyword parameters only, e.g. {node.name}(key=value)")
        raise UnknownNameError(unknown_name_message("activation or operator", node.name, names))
    raise SpecError(f"not an activation spec: {spec!r}")


def canonical(spec: str) -> str:
    """The canonical spelling of a spec: no spaces, keyword arguments sorted."""
    return str(parse(spec))


def activation_factory(spec: str | Callable | type[nn.Module]) -> Callable[[Site], nn.Module]:
    """A factory that makes a fresh module per site; validates ``spec`` at once."""
    make_activation(spec, Site())  # fail early, before a model is half built
    return lambda site: make_activation(spec, site)
