"""The search space: every expression of a few schemas, deduplicated by behaviour.

Bingham & Miikkulainen, "Efficient Activation Function Optimization through
Surrogate Modeling" (NeurIPS 2023, https://arxiv.org/abs/2301.05785) search the
functions ``unary(unary(x))`` and ``binary(unary(x),unary(x))`` and keep one
function per class of functions that agree on a fixed sample of inputs.

Choices made here, and why:

* Inputs: 1,000 draws of ``torch.randn`` from ``torch.Generator().manual_seed(0)``,
  clipped to [-5, 5], float32 (:func:`probe_inputs`).
* Evaluation is vectorised (each unary is evaluated once, outer operators act on
  whole blocks) but on rows padded to 1,024 entries and in blocks below torch's
  parallel grain size. torch evaluates the bulk of a tensor with SIMD kernels and
  a ragged tail with scalar ones, which may differ in the last bit, so without
  padding the bits of an output would depend on the batch layout. With it they
  equal those of the compiled expression applied to the padded inputs, whatever
  the block shape (a test checks this).
* ``exact`` equivalence: equal values on every input (``==``, so ``-0.0`` equals
  ``0.0``). ``tol`` equivalence: connected components of the relation
  ``max_i |asinh(f_i/s) - asinh(g_i/s)| <= rtol`` with ``s = atol/rtol``; this
  is an absolute tolerance ``atol`` near zero and a relative one ``rtol`` for
  large values (within a factor sqrt(2) of ``allclose``), and unlike
  ``allclose`` it is symmetric. Components are transitive closures, so a chain
  of near-identical functions forms one class.
* Functions with a non-finite output on the inputs are dropped.
* A class is represented by its shortest canonical string, ties broken
  lexicographically, so the result does not depend on enumeration order.
* n-ary schema: the four n-ary operators (sum, product, max, min) are
  commutative, so arguments are unordered and written in sorted order (which
  also fixes the float summation order); they are distinct by default because
  ``max_n(a,a,b)`` repeats the binary ``max(a,b)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torch import Tensor

from actlab._registry import Registry, closest, unknown_name_message
from actlab.activations import ops
from actlab.activations.expr import compile_expression
from actlab.errors import ActlabError, UnknownNameError
from actlab.spec import Node, parse

PAD = 1024  # a multiple of every SIMD width torch uses, so no row has a scalar tail
_BLOCK_ROWS = 31  # 31 * 1024 < 32768, torch's grain size: blocks stay single-threaded

Block = tuple[list[str], Tensor]  # canonical names and their padded outputs (rows)


@dataclass(frozen=True)
class _Ops:
    unary: list[str]
    binary: list[str]
    nary: list[str]
    distinct: bool


SCHEMAS: Registry[Callable[[_Ops, Tensor], Iterator[Block]]] = Registry("schema")
DEFAULT_SCHEMAS = ("unary(unary(x))", "binary(unary(x),unary(x))")


def probe_inputs(num: int = 1000, seed: int = 0, clip: float = 5.0) -> Tensor:
    """The fixed inputs on which functions are compared and featurised."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num, generator=gen, dtype=torch.float32).clamp(-clip, clip)


def expression_node(spec: str) -> Node:
    """Parse an expression; a bare operator name such as ``relu`` means ``relu(x)``."""
    return parse(spec if "(" in spec or spec == "x" else f"{spec}(x)")


def _pad(x: Tensor) -> Tensor:
    width = -(-x.numel() // PAD) * PAD
    return torch.cat([x, x.new_zeros(width - x.numel())])


def _unary_table(names: list[str], xp: Tensor) -> Tensor:
    return torch.stack([ops.UNARY[u](xp) for u in names])


@SCHEMAS.register("unary(x)")
def _schema_u(o: _Ops, xp: Tensor) -> Iterator[Block]:
    yield [f"{u}(x)" for u in o.unary], _unary_table(o.unary, xp)


@SCHEMAS.register("unary(unary(x))")
def _schema_uu(o: _Ops, xp: Tensor) -> Iterator[Block]:
    table = _unary_table(o.unary, xp)
    for outer in o.unary:
        for lo in range(0, len(o.unary), _BLOCK_ROWS):
            inner = o.unary[lo : lo + _BLOCK_ROWS]
            yield [f"{outer}({u}(x))" for u in inner], ops.UNARY[outer](table[lo : lo + _BLOCK_ROWS])


@SCHEMAS.register("binary(unary(x),unary(x))")
def _schema_buu(o: _Ops, xp: Tensor) -> Iterator[Block]:
    table = _unary_table(o.unary, xp)
    for b in o.binary:
        for i, left in enumerate(o.unary):
            for lo in range(0, len(o.unary), _BLOCK_ROWS):
                right = o.unary[lo : lo + _BLOCK_ROWS]
                out = ops.BINARY[b](table[i : i + 1], table[lo : lo + _BLOCK_ROWS])
                yield [f"{b}({left}(x),{r}(x))" for r in right], out


@SCHEMAS.register("nary(unary(x),unary(x),unary(x))")
def _schema_nuuu(o: _Ops, xp: Tensor) -> Iterator[Block]:
    table = _unary_table(o.unary, xp)
    pick = itertools.combinations if o.distinct else itertools.combinations_with_replacement
    combos = list(pick(range(len(o.unary)), 3))  # sorted indices = sorted argument strings
    for n in o.nary:
        for lo in range(0, len(combos), _BLOCK_ROWS):
            chunk = combos[lo : lo + _BLOCK_ROWS]
            idx = torch.tensor(chunk).T
            out = ops.apply_nary(n, [table[idx[k]] for k in range(3)])
            names = [f"{n}({','.join(o.unary[k] + '(x)' for k in c)})" for c in chunk]
            yield names, out


@dataclass
class SearchSpace:
    """Enumerated functions, their equivalence classes and the representatives' outputs."""

    names: list[str]  # every enumerated canonical name, in enumeration order
    finite: np.ndarray  # bool per name: finite on every probe input
    representative: dict[str, str]  # finite name -> its class representative
    unique: list[str]  # sorted representatives
    outputs: Tensor  # (len(unique), num_inputs) float32 outputs of the representatives
    inputs: Tensor  # the probe inputs
    equivalence: str
    rtol: float = 0.0
    atol: float = 0.0
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> dict[str, int]:
        return {"names": len(self.names), "finite": int(self.finite.sum()), "unique": len(self.unique)}

    def index(self, name: str) -> int:
        """Row in ``unique``/``outputs`` of the class of an enumerated (finite) function."""
        if not self._index:
            self._index.update({n: i for i, n in enumerate(self.unique)})
        rep = self.representative.get(name)
        if rep is None:
            hint = closest(name, list(self.representative))
            suggestion = f" Did you mean {hint!r}?" if hint else ""
            raise UnknownNameError(f"{name!r} is not a finite function of this search space of "
                                   f"{len(self.names)} names.{suggestion}")
        return self._index[rep]

    def find(self, spec: str) -> str | None:
        """The representative of the class an arbitrary expression falls in, if any.

        ``spec`` may be a bare operator name (``relu`` means ``relu(x)``); this is
        how baselines such as ``swish`` are located in a space of 2-level forms.
        """
        out = compile_expression(expression_node(spec))(_pad(self.inputs))[: self.inputs.numel()]
        if not torch.isfinite(out).all():
            return None
        if self.equivalence == "exact":
            hits = (self.outputs == out).all(dim=1).nonzero()
        else:
            dist = _transformed_gap(self.outputs, out[None], self.rtol, self.atol)
            hits = (dist <= self.rtol).nonzero()
        return self.unique[int(hits[0, 0])] if len(hits) else None


def _transformed_gap(a: Tensor, b: Tensor, rtol: float, atol: float) -> Tensor:
    """max_i |asinh(a_i/s) - asinh(b_i/s)| per row pair, s = atol/rtol."""
    s = atol / rtol
    return (torch.asinh(a.double() / s) - torch.asinh(b.double() / s)).abs().amax(dim=-1)


def _tol_components(rows: Tensor, rtol: float, atol: float) -> np.ndarray:
    """Component label per row under the ``tol`` relation (see the module docstring)."""
    t = torch.asinh(rows.double() / (atol / rtol))
    # The gap on a subset of columns bounds the full gap from below: cdist on 64
    # columns prunes almost every pair before the full check.
    sub = t[:, torch.linspace(0, t.shape[1] - 1, min(64, t.shape[1])).long()]
    pairs: list[Tensor] = []
    for lo in range(0, len(t), 256):
        near = torch.cdist(sub[lo : lo + 256], sub, p=float("inf")) <= rtol
        i, j = near.nonzero(as_tuple=True)
        keep = (i + lo) < j
        pairs.append(torch.stack([i[keep] + lo, j[keep]]))
    i, j = torch.cat(pairs, dim=1) if pairs else torch.zeros(2, 0, dtype=torch.long)
    linked = (t[i] - t[j]).abs().amax(dim=1) <= rtol if len(i) else torch.zeros(0, dtype=torch.bool)
    i, j = i[linked].numpy(), j[linked].numpy()
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(t), len(t)))
    return connected_components(graph, directed=False)[1]


def _check(kind: str, chosen: Sequence[str] | None, valid: dict) -> list[str]:
    if chosen is None:
        return sorted(valid)
    for name in chosen:
        if name not in valid:
            raise UnknownNameError(unknown_name_message(f"{kind} operator", name, list(valid)))
    return sorted(set(chosen))


def enumerate_space(
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    equivalence: str = "exact",
    *,
    unary: Sequence[str] | None = None,
    binary: Sequence[str] | None = None,
    nary: Sequence[str] | None = None,
    distinct_nary: bool = True,
    num_inputs: int = 1000,
    seed: int = 0,
    clip: float = 5.0,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> SearchSpace:
    """Enumerate ``schemas`` over the grammar's operators (or subsets of them) and deduplicate."""
    if not schemas:
        raise ActlabError(f"name at least one schema: {', '.join(SCHEMAS.names())}")
    if equivalence not in ("exact", "tol"):
        raise ActlabError(f"equivalence must be 'exact' or 'tol', got {equivalence!r}")
    if equivalence == "tol" and not (rtol > 0 and atol > 0):
        raise ActlabError(f"tol equivalence needs rtol > 0 and atol > 0, got rtol={rtol}, atol={atol}")
    o = _Ops(_check("unary", unary, ops.UNARY), _check("binary", binary, ops.BINARY),
             _check("n-ary", nary, ops.NARY), distinct_nary)
    x = probe_inputs(num_inputs, seed, clip)
    xp = _pad(x)
    names: list[str] = []
    blocks: list[Tensor] = []
    for schema in dict.fromkeys(schemas):
        for block_names, out in SCHEMAS.get(schema)(o, xp):
            names += block_names
            blocks.append(out[:, :num_inputs])
    outputs = torch.cat(blocks) if blocks else torch.zeros(0, num_inputs)
    finite = torch.isfinite(outputs).all(dim=1).numpy()
    kept = outputs[torch.from_numpy(finite)] + 0.0  # + 0.0 turns -0.0 into 0.0
    kept_names = [n for n, f in zip(names, finite) if f]
    raw = np.ascontiguousarray(kept.numpy()).view(np.dtype((np.void, 4 * num_inputs)))
    _, first, label = np.unique(raw.ravel(), return_index=True, return_inverse=True)
    if equivalence == "tol" and len(first):
        label = _tol_components(kept[first], rtol, atol)[label.ravel()]
    classes: dict[int, list[int]] = {}
    for row, lab in enumerate(np.asarray(label).ravel()):
        classes.setdefault(int(lab), []).append(row)
    representative: dict[str, str] = {}
    rep_rows: dict[str, int] = {}
    for members in classes.values():
        rep = min(members, key=lambda r: (len(kept_names[r]), kept_names[r]))
        rep_rows[kept_names[rep]] = rep
        for r in members:
            representative[kept_names[r]] = kept_names[rep]
    unique = sorted(rep_rows)
    rep_out = kept[[rep_rows[n] for n in unique]] if unique else kept[:0]
    return SearchSpace(names, finite, representative, unique, rep_out, x, equivalence,
                       rtol if equivalence == "tol" else 0.0, atol if equivalence == "tol" else 0.0)
