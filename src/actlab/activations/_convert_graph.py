"""The torch.fx path of :func:`actlab.activations.convert.convert`.

A traced graph shows what module hooks cannot: functional calls (``F.relu(x)``)
and each use of a module called at several sites, as separate nodes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from actlab.errors import ActlabError

# Functional forms of the default types; a function is converted when its class is in ``types``.
FUNCTIONS: dict[object, type[nn.Module]] = {
    F.relu: nn.ReLU, F.relu_: nn.ReLU, torch.relu: nn.ReLU, torch.relu_: nn.ReLU,
    F.gelu: nn.GELU, F.silu: nn.SiLU, F.mish: nn.Mish, F.elu: nn.ELU, F.leaky_relu: nn.LeakyReLU,
    torch.tanh: nn.Tanh, F.tanh: nn.Tanh, torch.sigmoid: nn.Sigmoid, F.sigmoid: nn.Sigmoid,
}
METHODS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "relu_": nn.ReLU, "tanh": nn.Tanh, "tanh_": nn.Tanh, "sigmoid": nn.Sigmoid,
    "sigmoid_": nn.Sigmoid,
}


class Tracer(fx.Tracer):
    """Keeps activation modules (of ``types`` or made by actlab) as leaves, so each use is one node."""

    def __init__(self, types: tuple[type[nn.Module], ...]) -> None:
        super().__init__()
        self.types = types

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.types) or getattr(m, "is_activation", False) or super().is_leaf_module(m, qualname)


def functional_type(node: fx.Node, types: tuple) -> type[nn.Module] | None:
    if node.op == "call_function":
        cls = FUNCTIONS.get(node.target)
    elif node.op == "call_method":
        cls = METHODS.get(node.target)
    else:
        return None
    return cls if cls is not None and issubclass(cls, types) else None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def convert_graph(gm: fx.GraphModule, args: tuple, types: tuple, share_reused: bool, training: bool,
                  make: Callable) -> tuple[fx.GraphModule, list]:
    """Rewrite every activation node of ``gm`` to a module of ``make(name, original, shape)``.

    ``make`` returns the new module and its row of the site table.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    interp = _ShapeRecorder(gm, shapes)
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            interp.run(*args)
    except Exception as exc:  # noqa: BLE001
        raise ActlabError(f"the model failed on example_input: {first_line(exc)}") from None
    gm.train(was_training)
    table, made, taken = [], {}, set(dict(gm.named_modules()))
    originals = {n: type(gm.get_submodule(n.target)).__name__ for n in gm.graph.nodes
                 if n.op == "call_module" and isinstance(gm.get_submodule(n.target), types)}
    for node in list(gm.graph.nodes):
        if node in originals:
            original, base = originals[node], node.target
        elif functional_type(node, types) is not None:
            if node.op == "call_function":
                original = f"F.{node.target.__name__}"
            else:
                original = f"Tensor.{node.target}"
            owner = next(reversed(node.meta.get("nn_module_stack", {}).values()), ("", None))[0]
            base = f"{owner}.{node.name}" if owner else node.name
        else:
            continue
        if node.name not in shapes:
            continue  # not reached on example_input
        shape = shapes[node.name]
        if share_reused and node.op == "call_module" and node.target in made:
            name = made[node.target]
        else:
            name = base if node.op == "call_module" and base not in made.values() else _fresh(base, taken)
            taken.add(name)
            act, row = make(name, original, shape)
            gm.add_submodule(name, act)
            made.setdefault(node.target if node.op == "call_module" else name, name)
            table.append(row)
        with gm.graph.inserting_after(node):
            new_node = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(new_node)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    gm.train(training)
    return gm, table


def _fresh(base: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    k = 1
    while f"{base}_{k}" in taken:
        k += 1
    return f"{base}_{k}"


class _ShapeRecorder(fx.Interpreter):
    """Records the input shape of every node whose first argument is a tensor."""

    def __init__(self, gm: fx.GraphModule, shapes: dict) -> None:
        super().__init__(gm)
        self.shapes = shapes

    def run_node(self, n: fx.Node):
        if n.args and isinstance(n.args[0], fx.Node):
            value = self.env.get(n.args[0])
            if isinstance(value, Tensor):
                self.shapes[n.name] = tuple(value.shape)
        return super().run_node(n)

