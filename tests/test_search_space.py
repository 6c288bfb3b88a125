"""Search-space enumeration and deduplication."""

import math
import random

import numpy as np
import pytest
import torch

from actlab.activations import make_activation, parse
from actlab.errors import ActlabError, UnknownNameError
from actlab.search import enumerate_space, evaluate_expressions, probe_inputs

UU, BUU, NUUU = "unary(unary(x))", "binary(unary(x),unary(x))", "nary(unary(x),unary(x),unary(x))"


@pytest.fixture(scope="module")
def space():
    return enumerate_space()


def test_probe_inputs_are_seeded_clipped_float32_normals():
    x = probe_inputs()
    expected = torch.randn(1000, generator=torch.Generator().manual_seed(0)).clamp(-5, 5)
    assert x.dtype == torch.float32 and torch.equal(x, expected)


def test_hand_counted_unary_unary_classes():
    # relu, identity, negative composed: 9 names falling in 5 classes:
    # relu {relu.relu, relu.id, id.relu}, x {id.id, neg.neg}, -x {id.neg, neg.id}, relu(-x), -relu(x).
    s = enumerate_space([UU], unary=["relu", "identity", "negative"])
    assert s.counts == {"names": 9, "finite": 9, "unique": 5}
    assert s.unique == sorted(["relu(relu(x))", "identity(identity(x))", "identity(negative(x))",
                               "relu(negative(x))", "negative(relu(x))"])
    assert s.representative["relu(identity(x))"] == "relu(relu(x))"
    assert s.representative["negative(negative(x))"] == "identity(identity(x))"
    assert s.representative["negative(identity(x))"] == "identity(negative(x))"


def test_hand_counted_binary_classes_and_find():
    # max over {relu, negative}: max(relu,relu)=relu, max(neg,neg)=-x, and both mixed orders = |x|.
    s = enumerate_space([BUU], unary=["relu", "negative"], binary=["max"])
    assert s.counts == {"names": 4, "finite": 4, "unique": 3}
    assert s.representative["max(relu(x),negative(x))"] == "max(negative(x),relu(x))"
    assert s.find("abs") == "max(negative(x),relu(x))"
    assert s.find("tanh") is None


def test_nary_counts_unordered_distinct_or_not():
    unary = ["relu", "tanh", "exp", "sigmoid"]
    distinct = enumerate_space([NUUU], unary=unary, nary=["sum_n", "max_n"])
    repeated = enumerate_space([NUUU], unary=unary, nary=["sum_n", "max_n"], distinct_nary=False)
    assert distinct.counts["names"] == 2 * math.comb(4, 3)
    assert repeated.counts["names"] == 2 * math.comb(4 + 2, 3)  # multisets of size 3
    assert "sum_n(exp(x),relu(x),sigmoid(x))" in distinct.names
    assert torch.equal(evaluate_expressions(repeated.unique), repeated.outputs)  # same fold order


def test_default_space_has_5832_names_and_a_consistent_class_map(space):
    assert space.counts["names"] == 27 * 27 + 7 * 27 * 27 == 5832
    assert 2800 <= space.counts["unique"] < space.counts["finite"] < 5832
    reps = set(space.unique)
    assert set(space.representative.values()) == reps
    assert all(space.representative[r] == r for r in reps)
    for name, rep in space.representative.items():
        assert (len(rep), rep) <= (len(name), name)


def test_outputs_match_compiled_expressions_bitwise(space):
    # Every member of a class evaluates (through the expression compiler, on padded
    # inputs) to exactly the representative's outputs.
    members = random.Random(0).sample(sorted(space.representative), 300)
    got = evaluate_expressions(members)
    want = space.outputs[[space.index(space.representative[m]) for m in members]]
    assert torch.equal(got, want)
    for name in members[:20]:
        assert str(parse(name)) == name  # canonical spelling


def test_known_exact_equivalences(space):
    rep = space.representative
    assert rep["relu(relu(x))"] == rep["relu(identity(x))"] == rep["identity(relu(x))"]
    assert rep["abs(negative(x))"] == rep["abs(identity(x))"] == rep["identity(abs(x))"]
    assert rep["abs(relu(x))"] != rep["elu(identity(x))"]
    assert space.find("swish") == rep["mul(identity(x),sigmoid(x))"]


def test_non_finite_functions_are_dropped(space):
    names = np.array(space.names)
    for bad in ["reciprocal(zero(x))", "div(one(x),zero(x))", "pow(identity(x),sigmoid(x))"]:  # inf, inf, nan
        assert not space.finite[names == bad][0] and bad not in space.representative
    assert torch.isfinite(space.outputs).all()


def test_tolerance_merges_near_identical_functions():
    kwargs = {"unary": ["exp", "one", "expm1", "identity", "relu", "elu"], "binary": ["sub"]}
    exact = enumerate_space([UU, BUU], "exact", **kwargs)
    tol = enumerate_space([UU, BUU], "tol", **kwargs)
    a, b = "sub(exp(x),one(x))", "expm1(identity(x))"
    diff = evaluate_expressions([a]) - evaluate_expressions([b])
    assert 0 < diff.abs().max() < 1e-5  # equal in maths, not in float32
    assert exact.representative[a] != exact.representative[b]
    assert tol.representative[a] == tol.representative[b]
    assert tol.representative["relu(identity(x))"] != tol.representative["elu(identity(x))"]
    assert tol.counts["unique"] < exact.counts["unique"]


def test_enumeration_is_deterministic_and_independent_of_operator_order():
    a = enumerate_space([UU, BUU], unary=["tanh", "relu", "exp"], binary=["add", "pow"])
    b = enumerate_space([UU, BUU], unary=["exp", "tanh", "relu"], binary=["pow", "add"])
    assert a.unique == b.unique and a.representative == b.representative
    assert torch.equal(a.outputs, b.outputs)


def test_baseline_activation_modules_agree_with_their_class(space):
    x = probe_inputs()
    for name in ["relu", "tanh", "elu", "softplus"]:
        row = space.outputs[space.index(space.find(name))]
        torch.testing.assert_close(make_activation(name)(x), row)


@pytest.mark.parametrize("kwargs,error", [
    ({"schemas": ["unary(binary(x))"]}, UnknownNameError),
    ({"unary": ["rleu"]}, UnknownNameError),
    ({"equivalence": "close"}, ActlabError),
    ({"equivalence": "tol", "rtol": 0.0}, ActlabError),
])
def test_bad_arguments_raise(kwargs, error):
    with pytest.raises(error):
        enumerate_space(**kwargs)


def test_index_maps_members_to_their_class_and_suggests_close_names(space):
    assert space.index("relu(identity(x))") == space.index(space.representative["relu(identity(x))"])
    with pytest.raises(UnknownNameError, match="Did you mean 'relu\\(relu\\(x\\)\\)'"):
        space.index("relu(relu(y))")
    with pytest.raises(UnknownNameError):
        space.index("reciprocal(zero(x))")  # enumerated but not finite
