"""The Triton spline kernels (``_triton_spline``) against the float64 PyTorch reference.

Op level: the six ``actlab_triton`` spline ops on segment tables (m = 2 and 4, sloped and
flat tails) and on knot values, in the three layouts (conv maps and dense layers per channel,
layer sharing of any shape) at sizes that are no multiple of a block, empty, at NaN, +-inf
and far beyond the range. Module level: the spline family through its autograd Functions,
which dispatch float32 calls to the Triton ops. Then one node under torch.compile, and opcheck.
"""

from __future__ import annotations

import copy

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

from actlab.activations.learnable import _kernels
from actlab.activations.learnable._autograd_spline import CubicSplineFn, LinearSplineFn, PiecewiseFn
from triton_helpers import DEVICES, activation, assert_match, input_with, kernel_device, run

NAN, INF = float("nan"), float("inf")
# conv: two programs along the rows per channel (and two buffer copies); dense: a masked column; layer: any shape
LAYOUTS = {"conv": ((3, 2, 19, 20), 2), "dense": ((7, 5), 5), "layer": ((5, 7, 33), 1)}
SPECIAL = [NAN, INF, -INF, -40.0, 40.0, -9.0, 9.0, -3.7, 3.7, 0.0]
VALUE_FNS = {"linear": (2, LinearSplineFn), "cubic": (4, CubicSplineFn)}
NAMES = ["output", "grad_input", "grad_param"]
# The interpreter runs the kernels in numpy, which warns at the NaN and inf inputs these tests give on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@pytest.fixture(scope="module")
def ops():
    import actlab.activations.learnable._triton_spline  # noqa: F401 - registers the ops

    return torch.ops.actlab_triton


def _input(shape, special, dev):
    """An input (from the global generator) with ``special`` first and an output gradient, on ``dev``."""
    return input_with(shape, special, seed=None).to(dev), torch.randn(shape).to(dev)


def _reference(fn, x, p, a, b, g):
    """Output, input gradient and parameter gradient of ``fn`` in float64 (never the kernels)."""
    x, p = x.cpu().double().requires_grad_(True), p.cpu().double().requires_grad_(True)
    y = fn.apply(x, p, a.cpu().double(), b.cpu().double())
    y.backward(g.cpu().double())
    return y, x.grad, p.grad


def _table(units, segments, m, flat, dev):
    table = torch.randn(units, segments, m)
    if flat:  # slope 0 at both ends: the tails are constant, also at +-inf
        table[:, 0, 1] = 0.0
        table[:, -1, 1:] = 0.0
    return table.to(dev), (1.0 + torch.rand(units)).to(dev), (segments / 2 + torch.rand(units)).to(dev)


def _run_table(ops, x, g, table, inv_h, offset):
    return ops.spline_fwd(x, table, inv_h, offset), *ops.spline_bwd(g, x, table, inv_h, offset)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("m", [2, 4])
def test_triton_spline_on_a_table_matches_the_float64_reference_with_tails_and_nonfinite_inputs(ops, m, layout,
                                                                                                 flat, device):
    shape, units = LAYOUTS[layout]
    with kernel_device(device) as dev:
        x, g = _input(shape, SPECIAL, dev)
        table, inv_h, offset = _table(units, 9, m, flat, dev)
        got = _run_table(ops, x, g, table, inv_h, offset)
    assert_match(got, _reference(PiecewiseFn, x, table, inv_h, offset, g), NAMES, rtol=2e-5)
    if flat:
        assert torch.isfinite(got[0]).sum() == x.numel() - 1  # only the NaN input gives NaN


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m", [2, 4])
def test_triton_spline_is_accurate_at_huge_finite_inputs(ops, m, device):
    # kept apart: a 1e30 output would set the scale of every comparison above
    with kernel_device(device) as dev:
        x, g = _input((3, 50), [1e30, -1e30, 1e20, -1e20, 1e6], dev)
        table, inv_h, offset = _table(1, 5, m, False, dev)
        got = _run_table(ops, x, g, table, inv_h, offset)
    ref = _reference(PiecewiseFn, x, table, inv_h, offset, g)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a.cpu(), b.float(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", list(VALUE_FNS))
def test_triton_splines_on_knot_values_match_the_float64_reference(ops, kind, layout, device):
    (m, fn), (shape, units) = VALUE_FNS[kind], LAYOUTS[layout]
    with kernel_device(device) as dev:
        lo, hi = -1.0 - torch.rand(units), 1.0 + torch.rand(units)
        x, g = _input(shape, SPECIAL + [float(lo[0]), float(hi[0])], dev)  # the grid's ends too
        values = torch.randn(units, 10)
        values[:, :4] = values[:, :1]  # a flat lower tail: its value at -inf
        values, lo, hi = values.to(dev), lo.to(dev), hi.to(dev)
        got = (getattr(ops, f"{kind}_spline_fwd")(x, values, lo, hi),
               *getattr(ops, f"{kind}_spline_bwd")(g, x, values, lo, hi))
    assert_match(got, _reference(fn, x, values, lo, hi, g), NAMES, rtol=2e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", list(VALUE_FNS))
def test_triton_splines_of_one_segment_match_the_reference(ops, kind, device):
    m, fn = VALUE_FNS[kind]
    with kernel_device(device) as dev:
        x, g = _input((4, 3, 5), SPECIAL, dev)
        values, lo, hi = torch.randn(3, m).to(dev), torch.full((3,), -1.0).to(dev), torch.full((3,), 2.0).to(dev)
        got = (getattr(ops, f"{kind}_spline_fwd")(x, values, lo, hi),
               *getattr(ops, f"{kind}_spline_bwd")(g, x, values, lo, hi))
        table, inv_h, offset = _table(1, 1, m, False, dev)
        got_table = _run_table(ops, x, g, table, inv_h, offset)
    assert_match(got, _reference(fn, x, values, lo, hi, g), NAMES, rtol=2e-5)
    assert_match(got_table, _reference(PiecewiseFn, x, table, inv_h, offset, g), NAMES, rtol=2e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape, units", [((0, 3, 4), 3), ((0,), 1)])
def test_triton_splines_on_empty_inputs_give_empty_outputs_and_zero_gradients(ops, shape, units, device):
    with kernel_device(device) as dev:
        x = torch.empty(shape, device=dev)
        table, inv_h, offset = _table(units, 4, 4, False, dev)
        values, lo, hi = torch.randn(units, 6, device=dev), -torch.ones(units, device=dev), torch.ones(units, device=dev)
        results = [_run_table(ops, x, x, table, inv_h, offset)]
        for kind in VALUE_FNS:
            results.append((getattr(ops, f"{kind}_spline_fwd")(x, values, lo, hi),
                            *getattr(ops, f"{kind}_spline_bwd")(x, x, values, lo, hi)))
    for (y, gx, gp), like in zip(results, [table, values, values]):
        assert y.shape == gx.shape == x.shape and gp.shape == like.shape and not gp.any()


SPECS = ["spline(knots=32)", "spline(knots=9,order=3)", "spline(knots=200)", "spline(knots=200,order=3)"]
MODULE_SHAPES = {"conv": (3, 3, 9, 10), "dense": (7, 3), "layer": (4, 3, 5)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(MODULE_SHAPES))
@pytest.mark.parametrize("sharing", ["layer", "channel"])
@pytest.mark.parametrize("spec", SPECS)
def test_triton_spline_modules_match_their_float64_copies(spec, sharing, layout, device):
    module = activation(spec, sharing=sharing)
    reference = copy.deepcopy(module).double()
    with kernel_device(device) as dev:
        x, g = _input(MODULE_SHAPES[layout], [NAN, INF, -INF, -40.0, 40.0, 3.7], dev)
        g.view(-1)[:3] = 0.0  # NaN and inf inputs: their gradient terms would make every bin they reach NaN
        module.to(dev)
        assert _kernels.usable(x) and _kernels._ops(x) is torch.ops.actlab_triton
        got = run(module, x, g)
    assert_match(got, run(reference, x.cpu().double(), g.cpu().double()), NAMES, rtol=1e-4)


def _capture(graphs):
    def compiler(gm, inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    return aot_autograd(fw_compiler=compiler, bw_compiler=compiler)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec, op", [("spline(knots=9,order=3)", "cubic_spline"), ("spline(knots=32)", "linear_spline")])
def test_triton_spline_is_one_node_forward_and_backward_under_torch_compile(spec, op, device):
    module = activation(spec, sharing="channel")
    graphs = []
    with kernel_device(device) as dev:
        x, g = _input((4, 3, 5, 5), [-9.0, 9.0], dev)
        module.to(dev)
        compiled = torch.compile(module, backend=_capture(graphs), fullgraph=True, dynamic=False)
        got = run(compiled, x, g)
        want = run(module, x, g)
    calls = [[n.target for n in gm.graph.nodes if n.op == "call_function"] for gm in graphs]
    assert [c.count(getattr(torch.ops.actlab_triton, f"{op}_fwd").default) for c in calls] == [1, 0]
    assert [c.count(getattr(torch.ops.actlab_triton, f"{op}_bwd").default) for c in calls] == [0, 1]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["spline", "linear_spline", "cubic_spline"])
def test_triton_spline_ops_pass_opcheck(ops, name, device):
    with kernel_device(device) as dev:
        x, g = _input((2, 3, 5), [-9.0, 9.0], dev)
        if name == "spline":
            params = _table(3, 4, 4, False, dev)
        else:
            params = (torch.randn(3, 7, device=dev), -torch.ones(3, device=dev), torch.ones(3, device=dev))
        # aot dispatch is left to the compile test above: it is the slow one under the interpreter
        checks = ("test_schema", "test_autograd_registration", "test_faketensor")
        torch.library.opcheck(getattr(ops, f"{name}_fwd"), (x, *params), test_utils=checks)
        torch.library.opcheck(getattr(ops, f"{name}_bwd"), (g, x, *params), test_utils=checks)
