"""Parsing spec strings: expressions such as ``max(relu(x),cosh(elu(x)))``,
parametrised activations such as ``slaf(degree=4, basis=chebyshev)``, and the
``name(key=value,...)`` specs of datasets, models and schedules.

One small recursive-descent parser serves both, so an expression can nest a
parametrised activation and vice versa. Errors show the offending position:

    malformed spec at position 9: expected ')' or ','
      max(relu(x) cosh(x))
               ^
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from actlab.errors import SpecError

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)|(?P<sym>[(),=\[\]]))"
)


@dataclass(frozen=True)
class Var:
    """The input ``x``."""

    def __str__(self) -> str:
        return "x"


@dataclass(frozen=True)
class Num:
    value: float | int

    def __str__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Name:
    """A bare identifier: an activation name or a keyword value (``chebyshev``, ``true``)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ListNode:
    items: tuple[Node, ...]

    def __str__(self) -> str:
        return "[" + ",".join(map(str, self.items)) + "]"


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...] = ()
    kwargs: tuple[tuple[str, Node], ...] = ()

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs]
        return f"{self.name}({','.join(parts)})"


Node = Var | Num | Name | ListNode | Call


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                self.fail(len(text) - len(text[pos:].lstrip()), "unexpected character")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0

    def fail(self, pos: int, expected: str) -> None:
        raise SpecError(
            f"malformed spec at position {pos}: {expected}\n  {self.text}\n  {' ' * pos}^"
        )

    def peek(self) -> tuple[str, str, int]:
        if self.i < len(self.tokens):
            return self.tokens[self.i]
        return ("end", "", len(self.text))

    def take(self, sym: str, expected: str) -> None:
        kind, value, pos = self.peek()
        if value != sym or kind != "sym":
            found = "end of input" if kind == "end" else repr(value)
            self.fail(pos, f"expected {expected}, found {found}")
        self.i += 1

    def parse(self) -> Node:
        node = self.value()
        kind, value, pos = self.peek()
        if kind != "end":
            self.fail(pos, f"expected end of input, found {value!r}")
        return node

    def value(self) -> Node:
        kind, value, pos = self.peek()
        if kind == "num":
            self.i += 1
            number = float(value)
            return Num(int(number) if re.fullmatch(r"[-+]?\d+", value) else number)
        if kind == "sym" and value == "[":
            self.i += 1
            items: list[Node] = []
            if self.peek()[1] != "]":
                items.append(self.value())
                while self.peek()[1] == ",":
                    self.i += 1
                    items.append(self.value())
            self.take("]", "']' or ','")
            return ListNode(tuple(items))
        if kind != "name":
            found = "end of input" if kind == "end" else repr(value)
            self.fail(pos, f"expected a name, 'x' or a number, found {found}")
        self.i += 1
        if value == "x":
            return Var()
        if self.peek()[1] != "(":
            return Name(value)
        self.i += 1
        args: list[Node] = []
        kwargs: list[tuple[str, Node]] = []
        if self.peek()[1] != ")":
            while True:
                self.argument(args, kwargs)
                if self.peek()[1] != ",":
                    break
                self.i += 1
        self.take(")", "')' or ','")
        return Call(value, tuple(args), tuple(sorted(kwargs, key=lambda kv: kv[0])))

    def argument(self, args: list[Node], kwargs: list[tuple[str, Node]]) -> None:
        kind, value, pos = self.peek()
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
        if kind == "name" and nxt is not None and nxt[1] == "=":
            if any(k == value for k, _ in kwargs):
                self.fail(pos, f"keyword {value!r} given twice")
            self.i += 2
            kwargs.append((value, self.value()))
            return
        if kwargs:
            self.fail(pos, "expected keyword=value (positional arguments come first)")
        args.append(self.value())


MAX_LENGTH = 10_000  # characters; the search grammar's largest expressions are ~200
MAX_NESTING = 100  # brackets deep; the parser recurses once per level, Python stops near 1,000


def parse(text: str) -> Node:
    """Parse a spec string into a tree; raises :class:`SpecError` with the position."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("empty activation spec")
    if len(text) > MAX_LENGTH:
        raise SpecError(f"spec of {len(text)} characters; the limit is {MAX_LENGTH}")
    depth = deepest = 0
    for ch in text:
        depth += (ch in "([") - (ch in ")]")
        deepest = max(deepest, depth)
    if deepest > MAX_NESTING:
        raise SpecError(f"spec nests {deepest} brackets deep; the limit is {MAX_NESTING}")
    return _Parser(text).parse()


def to_python(node: Node) -> object:
    """A keyword value as a Python object; nested specs stay canonical strings."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        low = node.name.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "none":
            return None
        return node.name
    if isinstance(node, ListNode):
        return [to_python(n) for n in node.items]
    return str(node)


def name_and_options(text: str, what: str) -> tuple[str, dict]:
    """``name`` or ``name(key=value,...)`` -> (name, {key: python value}); for models,
    datasets and schedules, which take keyword options only."""
    node = parse(text)
    if isinstance(node, Name):
        return node.name, {}
    if isinstance(node, Call) and not node.args:
        return node.name, {k: to_python(v) for k, v in node.kwargs}
    raise SpecError(f"a {what} spec is name(key=value,...), got {text!r}")
