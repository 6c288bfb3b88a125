"""The one activation registry and ``make_activation``.

Every activation — fixed (``relu``), parametrised (``leaky_relu(negative_slope=0.1)``),
learnable (``slaf(degree=4)``) or an expression of the search grammar
(``max(relu(x),cosh(elu(x)))``) — is created from a spec string here. A
registered factory has the signature ``factory(site, **kwargs) -> nn.Module``,
where ``site`` tells a learnable family how many channels or neurons its
activation site has, so that it can keep parameters per layer, channel or
neuron.
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


def register_activation(name: str, *aliases: str) -> Callable[[ActivationFactory], ActivationFactory]:
    """Decorator: make ``factory(site, **kwargs)`` available by name."""
    return ACTIVATIONS.register(name, *aliases)


def _call_factory(name: str, factory: ActivationFactory, site: Site | None, kwargs: dict) -> nn.Module:
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
