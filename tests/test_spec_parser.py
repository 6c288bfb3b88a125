"""Parsing and printing of activation specs and expressions, and their errors."""

import pytest
import torch
from torch import nn

from actlab.activations import ACTIVATIONS, Expression, Site, canonical, make_activation, parse
from actlab.errors import ActlabError, SpecError, UnknownNameError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("max(relu(x),cosh(elu(x)))", "max(relu(x),cosh(elu(x)))"),
        ("  max( relu( x ) ,\tcosh(elu(x)) ) ", "max(relu(x),cosh(elu(x)))"),
        ("sum_n(abs(x), swish(x), sigmoid(x))", "sum_n(abs(x),swish(x),sigmoid(x))"),
        ("leaky_relu(negative_slope = 0.1)", "leaky_relu(negative_slope=0.1)"),
        ("slaf(degree=4, basis=chebyshev)", "slaf(basis=chebyshev,degree=4)"),
        ("mlp(widths=[64, 32])", "mlp(widths=[64,32])"),
        ("x", "x"),
    ],
)
def test_spec_prints_back_canonically_and_round_trips(text, expected):
    assert canonical(text) == expected
    assert canonical(expected) == expected
    assert parse(str(parse(text))) == parse(text)


@pytest.mark.parametrize(
    "text, position, expected",
    [
        ("max(relu(x) cosh(x))", 12, "expected ')' or ','"),
        ("relu(x", 6, "expected ')' or ','"),
        ("max(,x)", 4, "expected a name"),
        ("relu(x))", 7, "expected end of input"),
        ("relu(x) $", 8, "unexpected character"),
        ("slaf(degree=4, 3)", 15, "keyword=value"),
        ("slaf(degree=4, degree=5)", 15, "given twice"),
    ],
)
def test_malformed_spec_error_shows_position_and_expectation(text, position, expected):
    with pytest.raises(SpecError) as err:
        make_activation(text)
    message = str(err.value)
    assert f"position {position}" in message and expected in message
    caret_line = message.splitlines()[-1]
    assert caret_line.index("^") - 2 == position  # the caret sits under the fault


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_spec_is_rejected(text):
    with pytest.raises(SpecError, match="empty"):
        make_activation(text)


def test_unknown_activation_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as err:
        make_activation("rleu")
    assert "Did you mean 'relu'?" in str(err.value)
    assert "sigmoid" in str(err.value)


def test_unknown_operator_in_expression_suggests_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'cosh'"):
        make_activation("max(relu(x), cosj(x))")


@pytest.mark.parametrize("text, match", [("max(x)", "takes 2"), ("relu(x, x)", "takes 1"), ("sum_n(x)", "at least 2")])
def test_wrong_arity_is_reported(text, match):
    with pytest.raises(SpecError, match=match):
        make_activation(text)


def test_unknown_keyword_parameter_suggests_closest():
    with pytest.raises(SpecError, match="Did you mean 'negative_slope'"):
        make_activation("leaky_relu(slope=0.2)")


def test_user_errors_are_actlab_errors():
    for bad in ["rleu", "max(x)", "relu(", "leaky_relu(slope=1)"]:
        with pytest.raises(ActlabError):
            make_activation(bad)


@pytest.mark.parametrize("name", ACTIVATIONS.names())
def test_every_registered_activation_builds_and_keeps_shape(name):
    spec = {"anneal": "anneal(base=tanh)"}.get(name, name)  # anneal needs its base
    module = make_activation(spec, Site(3, "conv"))
    assert isinstance(module, nn.Module) and module.is_activation
    x = torch.randn(2, 3, 4, 4)
    y = module(x)
    assert isinstance(y, torch.Tensor) and y.shape == x.shape and torch.isfinite(y).all()


def test_bare_operator_name_means_operator_of_x():
    fn = make_activation("exp")
    assert isinstance(fn, Expression)
    assert torch.equal(fn(torch.tensor([0.0, 1.0])), torch.exp(torch.tensor([0.0, 1.0])))


def test_fixed_activation_matches_its_grammar_operator():
    x = torch.linspace(-5, 5, 101)
    for name in ["relu", "elu", "selu", "tanh", "sigmoid", "softplus", "softsign", "swish", "hard_sigmoid"]:
        torch.testing.assert_close(make_activation(name)(x), make_activation(f"{name}(x)")(x))


def test_parametrised_fixed_activation_uses_its_parameter():
    y = make_activation("leaky_relu(negative_slope=0.25)")(torch.tensor([-4.0, 2.0]))
    assert torch.equal(y, torch.tensor([-1.0, 2.0]))
