"""Every operator of the search grammar against a numpy/scipy reference."""

import numpy as np
import pytest
import torch
from scipy import special

from actlab.activations import make_activation, ops

X = np.array([-1e4, -300.0, -50.0, -20.0, -5.0, -1.5, -1.0, -0.3, 0.0, 0.3, 1.0, 1.5, 5.0, 20.0, 50.0, 300.0, 1e4])
ALPHA, SCALE = ops.SELU_ALPHA, ops.SELU_SCALE

with np.errstate(all="ignore"):
    UNARY_REF = {
        "zero": lambda x: np.zeros_like(x),
        "one": lambda x: np.ones_like(x),
        "identity": lambda x: x,
        "negative": lambda x: -x,
        "abs": np.abs,
        "reciprocal": lambda x: np.divide(1.0, x),
        "square": np.square,
        "exp": np.exp,
        "erf": special.erf,
        "erfc": special.erfc,
        "sinh": np.sinh,
        "cosh": np.cosh,
        "tanh": np.tanh,
        "expm1": np.expm1,
        "sigmoid": special.expit,
        "log_sigmoid": special.log_expit,
        "arcsinh": np.arcsinh,
        "arctan": np.arctan,
        "bessel_i0e": special.i0e,
        "bessel_i1e": special.i1e,
        "relu": lambda x: np.maximum(x, 0.0),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "selu": lambda x: SCALE * np.where(x > 0, x, ALPHA * np.expm1(np.minimum(x, 0))),
        "swish": lambda x: x * special.expit(x),
        "softplus": lambda x: np.logaddexp(0.0, x),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "hard_sigmoid": lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
    }
    BINARY_REF = {
        "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
        "pow": np.power, "max": np.maximum, "min": np.minimum,
    }
NARY_REF = {"sum_n": np.add, "prod_n": np.multiply, "max_n": np.maximum, "min_n": np.minimum}


def test_grammar_has_27_unary_7_binary_4_nary_operators():
    assert (len(ops.UNARY), len(ops.BINARY), len(ops.NARY)) == (27, 7, 4)
    assert set(UNARY_REF) == set(ops.UNARY)


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-9, atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("name", sorted(ops.UNARY))
def test_unary_operator_matches_reference_on_large_and_negative_inputs(name):
    with np.errstate(all="ignore"):
        expected = UNARY_REF[name](X)
    _close(ops.UNARY[name](torch.tensor(X)), expected)
    # the same through the expression parser
    _close(make_activation(f"{name}(x)")(torch.tensor(X)), expected)


@pytest.mark.parametrize("name", sorted(ops.BINARY))
def test_binary_operator_matches_reference_on_all_pairs(name):
    a, b = np.meshgrid(X[::2], np.array([-3.0, -2.0, -0.5, 0.0, 0.5, 2.0, 3.0]))
    with np.errstate(all="ignore"):
        expected = BINARY_REF[name](a, b)
    _close(ops.BINARY[name](torch.tensor(a), torch.tensor(b)), expected)


@pytest.mark.parametrize("name", sorted(ops.NARY))
def test_nary_operator_folds_its_binary_over_three_arguments(name):
    fn = make_activation(f"{name}(abs(x), tanh(x), negative(x))")
    with np.errstate(all="ignore"):
        expected = NARY_REF[name](NARY_REF[name](np.abs(X), np.tanh(X)), -X)
    _close(fn(torch.tensor(X)), expected)


def test_nested_expression_matches_numpy_composition():
    fn = make_activation("max(relu(x), cosh(elu(x)))")
    with np.errstate(all="ignore"):
        expected = np.maximum(np.maximum(X, 0), np.cosh(UNARY_REF["elu"](X)))
    _close(fn(torch.tensor(X)), expected)


def test_hard_sigmoid_is_tensorflow_definition_not_torch():
    x = torch.tensor([-3.0, 0.0, 1.0, 3.0])
    assert torch.equal(make_activation("hard_sigmoid")(x), torch.tensor([0.0, 0.5, 0.7, 1.0]))
