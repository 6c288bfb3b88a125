"""K-FAC factors against exact per-example Fisher blocks, and the feature builders."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from actlab.activations import make_activation
from actlab.errors import ActlabError
from actlab.search import (
    build_features,
    evaluate_expressions,
    fisher_features,
    kfac_factors,
    kfac_log_spectrum,
    output_features,
    probe_inputs,
    spectrum_cdf,
)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _per_example_block(model: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact per-example gradients of -log p(y|x) w.r.t. [W | b] of one layer, row-major, via torch.func."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def nll(p, xi, yi):
        logits = functional_call(model, p, (xi[None],))
        return nn.functional.cross_entropy(logits, yi[None])

    grads = vmap(grad(nll), in_dims=(None, 0, 0))(params, x, y)
    w, b = grads[f"{layer}.weight"], grads[f"{layer}.bias"]
    return torch.cat([w, b[:, :, None]], dim=2).flatten(1)  # (N, out * (in + 1))


@pytest.mark.parametrize("layer,index", [("0", 0), ("2", 1)])
def test_kfac_equals_exact_fisher_block_for_one_example(layer, index):
    model = _mlp()
    x, y = torch.randn(1, 4, dtype=torch.float64), torch.tensor([2])
    f = kfac_factors(model, x, y, labels="empirical")[index]
    vec = _per_example_block(model, layer, x, y)[0]
    exact = torch.outer(vec, vec)  # vec(g a^T) row-major = kron(g, a), so the block is kron(G, A)
    torch.testing.assert_close(torch.kron(f.G, f.A), exact, rtol=1e-10, atol=1e-12)


def test_kfac_conv_single_location_equals_exact_block():
    # One output location per example: the per-example weight gradient is g a^T with a the
    # unfolded patch, so this checks that unfold's patch order matches the weight layout.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Tanh(), nn.Linear(3, 4)).double()
    x, y = torch.randn(1, 2, 3, 3, dtype=torch.float64), torch.tensor([1])
    f = kfac_factors(model, x, y, labels="empirical")[0]
    params = {k: v.detach() for k, v in model.named_parameters()}
    g = torch.func.grad(lambda p: nn.functional.cross_entropy(functional_call(model, p, (x,)), y))(params)
    vec = torch.cat([g["0.weight"].flatten(1), g["0.bias"][:, None]], dim=1).flatten()
    torch.testing.assert_close(torch.kron(f.G, f.A), torch.outer(vec, vec), rtol=1e-10, atol=1e-12)


def test_kfac_batch_factors_are_means_of_per_example_terms_and_approximate_the_fisher():
    model = _mlp()
    torch.manual_seed(3)
    x, y = torch.randn(256, 4, dtype=torch.float64), torch.randint(0, 3, (256,))
    f = kfac_factors(model, x, y, labels="empirical")[0]
    vecs = _per_example_block(model, "0", x, y).reshape(256, 5, 5)  # (N, out, in + 1)
    g = vecs[:, :, -1]  # the bias gradient of a linear layer is g itself
    a = torch.cat([x, torch.ones(256, 1, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(f.G, g.T @ g / 256)
    torch.testing.assert_close(f.A, a.T @ a / 256)
    flat = vecs.flatten(1)
    exact = flat.T @ flat / 256
    approx = torch.kron(f.G, f.A)
    # K-FAC assumes a and g independent; on this network it keeps the trace and the
    # leading eigenvalues to within some 10-30 percent.
    assert abs(approx.trace() / exact.trace() - 1) < 0.15
    top_exact, top_approx = (torch.linalg.eigvalsh(m)[-5:] for m in (exact, approx))
    assert torch.allclose(top_approx.log(), top_exact.log(), atol=0.25)
    assert (approx - exact).norm() / exact.norm() < 0.4


def test_log_spectrum_equals_log_eigenvalues_of_explicit_kron():
    torch.manual_seed(0)
    m1, m2 = torch.randn(4, 4, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    A, G = m1 @ m1.T + 0.1 * torch.eye(4), m2 @ m2.T + 0.1 * torch.eye(3)
    expected = torch.linalg.eigvalsh(torch.kron(A, G)).log()
    torch.testing.assert_close(kfac_log_spectrum(A, G).sort().values, expected)


def test_spectrum_cdf_counts_out_of_range_values_in_end_bins():
    cdf = spectrum_cdf(torch.tensor([-100.0, -0.5, 0.5, 100.0]), bins=2, range=(-1.0, 1.0))
    np.testing.assert_allclose(cdf, [0.5, 1.0])


def _cnn(name: str) -> nn.Module:
    act = lambda: make_activation(name)  # noqa: E731
    return nn.Sequential(nn.Conv2d(1, 3, 3), act(), nn.Flatten(), nn.Linear(3 * 6 * 6, 40), act(),
                         nn.Linear(40, 4))


def test_fisher_features_match_explicit_factor_spectra_and_are_cdfs():
    torch.manual_seed(0)
    model, x = _cnn("tanh"), torch.randn(16, 1, 8, 8)  # 16 examples < 109 inputs: the Gram path
    feats = fisher_features(model, x, bins=12, range=(-28.0, 4.0), seed=5)
    slow = np.concatenate([spectrum_cdf(kfac_log_spectrum(f.A, f.G), 12, (-28.0, 4.0))
                           for f in kfac_factors(model, x, seed=5)])
    np.testing.assert_allclose(feats, slow)
    per_layer = feats.reshape(3, 12)
    assert (np.diff(per_layer, axis=1) >= 0).all() and np.allclose(per_layer[:, -1], 1.0)


def test_sampled_labels_are_seeded():
    model, x = _cnn("relu"), torch.randn(32, 1, 8, 8)
    a = fisher_features(model, x, seed=1, bins=64)
    np.testing.assert_array_equal(a, fisher_features(model, x, seed=1, bins=64))
    assert not np.array_equal(a, fisher_features(model, x, seed=2, bins=64))


def test_build_features_shapes_determinism_and_rng_isolation():
    names = ["relu(x)", "tanh(sigmoid(x))", "max(elu(x),zero(x))"]
    x = torch.randn(8, 1, 8, 8)
    state = torch.get_rng_state()
    f1 = build_features(names, _cnn, x, seed=3, bins=10)
    assert torch.equal(state, torch.get_rng_state())
    f2 = build_features(names, _cnn, x, seed=3, bins=10)
    assert f1.outputs.shape == (3, 1000) and f1.fisher.shape == (3, 30)
    np.testing.assert_array_equal(f1.fisher, f2.fisher)
    np.testing.assert_array_equal(f1.outputs[0], probe_inputs().clamp(min=0).numpy())
    assert not np.array_equal(f1.fisher, build_features(names, _cnn, x, seed=4, bins=10).fisher)


def test_overflowing_activation_puts_its_mass_in_the_top_bin():
    feats = fisher_features(_cnn("exp(exp(exp(x)))"), torch.randn(4, 1, 8, 8) * 3, bins=5)
    np.testing.assert_array_equal(feats.reshape(3, 5)[1:], [[0, 0, 0, 0, 1]] * 2)


def test_output_features_sorted_is_the_quantile_function():
    out = evaluate_expressions(["tanh", "negative(x)"])
    np.testing.assert_array_equal(output_features(out)[0], torch.tanh(probe_inputs()).numpy())
    np.testing.assert_array_equal(output_features(out, sort=True)[1], np.sort(-probe_inputs().numpy()))


@pytest.mark.parametrize("kwargs", [{"labels": "true"}, {"labels": "empirical"}, {"bins": 0}])
def test_bad_fisher_arguments_raise(kwargs):
    with pytest.raises(ActlabError):
        fisher_features(_mlp(), torch.randn(2, 4, dtype=torch.float64), **kwargs)


def test_model_without_layers_raises():
    with pytest.raises(ActlabError, match="no nn.Linear"):
        fisher_features(nn.Sequential(nn.Flatten()), torch.randn(2, 4))
