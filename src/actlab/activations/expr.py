"""Expressions of the search grammar as ``nn.Module``s.

A parsed tree is compiled once into nested closures, so evaluating an
expression costs only the operator calls.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from actlab._registry import unknown_name_message
from actlab.activations import ops
from actlab.errors import SpecError, UnknownNameError
from actlab.spec import Call, Node, Var

Fn = Callable[[Tensor], Tensor]


def compile_expression(node: Node) -> Fn:
    """Turn an expression tree into a function of ``x``; checks names and arities."""
    if isinstance(node, Var):
        return lambda x: x
    if not isinstance(node, Call):
        raise SpecError(f"expected x or an operator call in an expression, found {node}")
    if node.kwargs:
        raise SpecError(f"operator {node.name} takes no keyword parameters")
    if node.name not in ops.UNARY and node.name not in ops.BINARY and node.name not in ops.NARY:
        raise UnknownNameError(unknown_name_message("operator", node.name, ops.operator_names()))
    lo, hi = ops.arity(node.name)
    if not lo <= len(node.args) <= hi:
        want = f"{lo}" if lo == hi else f"at least {lo}"
        raise SpecError(f"operator {node.name} takes {want} argument(s), got {len(node.args)} in {node}")
    args = [compile_expression(a) for a in node.args]
    if node.name in ops.UNARY:
        f, (a,) = ops.UNARY[node.name], args
        return lambda x: f(a(x))
    if node.name in ops.BINARY:
        g, (a, b) = ops.BINARY[node.name], args
        return lambda x: g(a(x), b(x))
    name = node.name
    return lambda x: ops.apply_nary(name, [a(x) for a in args])


class Expression(nn.Module):
    """An activation given by an expression, e.g. ``max(relu(x),cosh(elu(x)))``."""

    def __init__(self, fn: Fn, text: str) -> None:
        super().__init__()
        self.fn = fn
        self.text = text

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.text

    # The compiled function is a closure, which pickle cannot store: the text is enough to rebuild it.
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "fn"}

    def __setstate__(self, state: dict) -> None:
        from actlab.spec import parse

        super().__setstate__(state)
        self.fn = compile_expression(parse(self.text))
