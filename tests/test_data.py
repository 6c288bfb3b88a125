"""Datasets: registry, split helpers, and the shipped and generated datasets (shapes, splits, leakage)."""

from __future__ import annotations

import gzip
import io
from importlib import resources

import numpy as np
import pytest
import torch

from actlab.data import dataset_names, dataset_options, load_dataset
from actlab.data.base import SPLIT_SEED, fraction_split, holdout_split, stratified_parts
from actlab.data.images import MNIST_MEAN, MNIST_STD
from actlab.data.synthetic import two_spirals
from actlab.data.tabular import read_titanic, titanic_features
from data_helpers import rows, unnormalise

from actlab.errors import ActlabError, UnknownNameError

# name -> (input_shape, num_classes, total rows) of every dataset that loads offline
OFFLINE = {
    "mnist10k": ((1, 28, 28), 10, 10_000),
    "digits": ((1, 8, 8), 10, 1797),
    "titanic": ((9,), 2, 891),
    "banknote": ((4,), 2, 1372),
    "spirals": ((2,), 2, 2000),
    "moons": ((2,), 2, 2000),
}
FROM_FILES = {"mnist", "fashion_mnist", "cifar10"}


def _splits(ds):
    return {"train": ds.train, "val": ds.val, "test": ds.test}


# ---------------------------------------------------------------- every dataset


def test_every_registered_dataset_is_covered_by_these_tests():
    assert set(dataset_names()) == set(OFFLINE) | FROM_FILES


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_dataset_shapes_dtypes_labels_and_sizes(name):
    shape, classes, total = OFFLINE[name]
    ds = load_dataset(name)
    assert ds.name == name and ds.input_shape == shape and ds.num_classes == classes
    for split in _splits(ds).values():
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape == (len(split.y), *shape)
        assert split.y.min() >= 0 and split.y.max() < classes
        assert torch.isfinite(split.x).all()
    sizes = ds.sizes()
    assert sum(sizes.values()) == total
    val_fraction = 0.1 if name == "mnist10k" else 0.15
    assert sizes["val"] == sizes["test"] == round(val_fraction * total)
    assert set(torch.cat([ds.train.y, ds.val.y, ds.test.y]).tolist()) == set(range(classes))


@pytest.mark.parametrize("name", sorted(OFFLINE))
def test_offline_dataset_loads_identically_twice(name):
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    for key in ("train", "val", "test"):
        assert torch.equal(_splits(a)[key].x, _splits(b)[key].x)
        assert torch.equal(_splits(a)[key].y, _splits(b)[key].y)


@pytest.mark.parametrize("name", ["mnist10k", "digits", "titanic", "banknote"])
def test_fixed_datasets_ignore_the_training_seed(name):
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


@pytest.mark.parametrize("name", ["spirals", "moons"])
def test_generated_datasets_draw_new_points_per_seed(name):
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert not torch.equal(a.train.x, b.train.x)


@pytest.mark.parametrize("name", ["mnist10k", "titanic", "digits"])
def test_changing_a_returned_tensor_does_not_change_the_next_load(name):
    ds = load_dataset(name)
    expected = ds.train.x.clone()
    ds.train.x.fill_(7.0)
    ds.train.y.fill_(0)
    again = load_dataset(name)
    assert torch.equal(again.train.x, expected) and again.train.y.max() > 0


def test_unknown_dataset_name_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError, match="mnist10k") as info:
        load_dataset("mnist10")
    assert "Did you mean 'mnist10k'" in str(info.value) and "titanic" in str(info.value)


def test_unknown_option_is_named_with_the_valid_ones():
    with pytest.raises(ActlabError, match="'nois'.*Did you mean 'noise'"):
        load_dataset("moons", nois=0.1)
    with pytest.raises(ActlabError, match="'titanic' takes no options, got 'val_size'"):
        load_dataset("titanic", val_size=10)


@pytest.mark.parametrize(
    ("options", "named"),
    [({"n_samples": 5}, "n_samples"), ({"n_samples": "100"}, "n_samples"), ({"noise": -1}, "noise")],
)
def test_bad_option_values_name_the_option(options, named):
    with pytest.raises(ActlabError, match=named):
        load_dataset("spirals", **options)


def test_dataset_options_reports_defaults():
    assert dataset_options("moons") == {"n_samples": 2000, "noise": 0.2}
    assert dataset_options("mnist") == {"val_size": 5000}
    assert dataset_options("mnist10k") == {}


# ---------------------------------------------------------------- split helpers


def test_stratified_parts_partition_exactly_with_proportional_classes():
    y = torch.as_tensor(np.repeat([0, 1, 2], [500, 300, 200]))
    rest, a, b = stratified_parts(y, (100, 250), seed=5)
    assert (len(rest), len(a), len(b)) == (650, 100, 250)
    assert torch.equal(torch.sort(torch.cat([rest, a, b])).values, torch.arange(1000))
    assert torch.bincount(y[a]).tolist() == [50, 30, 20]  # the first part is exactly proportional
    assert (torch.bincount(y[b], minlength=3) - torch.tensor([125, 75, 50])).abs().max() <= 1
    again = stratified_parts(y, (100, 250), seed=5)
    other = stratified_parts(y, (100, 250), seed=6)
    assert all(torch.equal(p, q) for p, q in zip((rest, a, b), again))
    assert set(a.tolist()) != set(other[1].tolist())  # the seed picks which rows, not just their order


def test_holdout_split_works_on_tiny_sets_and_rejects_impossible_sizes():
    y = torch.arange(12) % 10  # classes of 1 or 2 rows: too few for most stratifiers
    rest, held = holdout_split(y, 3)
    assert len(held) == 3 and len(rest) == 9 and not set(held.tolist()) & set(rest.tolist())
    for size in (0, 12):
        with pytest.raises(ActlabError, match=f"val_size={size}"):
            holdout_split(y, size)


# ---------------------------------------------------------------- shipped data


def _shipped_mnist() -> tuple[np.ndarray, np.ndarray]:
    root = resources.files("actlab.data") / "files" / "mnist"
    images = gzip.decompress((root / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((root / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return np.frombuffer(images, np.uint8, offset=16).reshape(-1, 28, 28), np.frombuffer(labels, np.uint8, offset=8)


def test_mnist10k_is_an_8k_1k_1k_stratified_partition_of_the_shipped_images():
    ds = load_dataset("mnist10k")
    assert ds.description == "MNIST-10k (official test split, re-split 8k/1k/1k)"
    assert ds.sizes() == {"train": 8000, "val": 1000, "test": 1000}
    images, labels = _shipped_mnist()
    loaded = np.concatenate([unnormalise(s.x, MNIST_MEAN, MNIST_STD) for s in _splits(ds).values()])
    loaded_labels = torch.cat([s.y for s in _splits(ds).values()]).numpy()
    # pixels and labels together: each row with its label appended
    pairs = np.concatenate([loaded.reshape(10_000, -1), loaded_labels[:, None].astype(np.uint8)], axis=1)
    expected = np.concatenate([images.reshape(10_000, -1), labels[:, None]], axis=1)
    assert np.array_equal(rows(pairs), rows(expected))
    full = np.bincount(labels, minlength=10)
    assert (np.abs(np.bincount(ds.test.y.numpy(), minlength=10) - full / 10) < 1).all()
    assert ds.train.x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)


def test_digits_are_the_sklearn_digits_scaled_to_unit_range():
    from sklearn.datasets import load_digits

    pixels, labels = load_digits(return_X_y=True)
    ds = load_dataset("digits")
    loaded = torch.cat([s.x for s in _splits(ds).values()]).reshape(-1, 64).numpy() * 16
    loaded_labels = torch.cat([s.y for s in _splits(ds).values()]).numpy()
    assert np.allclose(loaded, loaded.round(), atol=1e-5) and loaded.max() == pytest.approx(16)
    pairs = np.column_stack([loaded.round(), loaded_labels]).astype(np.int64)
    assert np.array_equal(rows(pairs), rows(np.column_stack([pixels, labels]).astype(np.int64)))


def test_titanic_matches_a_numpy_reference_fitted_on_train_rows_only():
    raw, survived = read_titanic()
    assert raw.shape == (891, 7) and np.isnan(raw[:, 2]).sum() == 177 and (raw[:, 6] < 0).sum() == 2
    train_idx, val_idx, test_idx = (i.numpy() for i in fraction_split(torch.as_tensor(survived), seed=SPLIT_SEED))
    age = raw[:, 2].copy()
    age[np.isnan(age)] = np.nanmedian(raw[train_idx, 2])
    ports = raw[:, 6].copy()
    ports[ports < 0] = 2  # Southampton: 644 of 889 known ports, the most frequent in any 70% sample
    features = np.column_stack(
        [raw[:, 0], raw[:, 1], age, raw[:, 3], raw[:, 4], np.log1p(raw[:, 5]), np.eye(3)[ports.astype(int)]]
    )
    mean, std = features[train_idx].mean(0), features[train_idx].std(0)
    ds = load_dataset("titanic")
    assert ds.description == "Titanic (Kaggle train set, 891 passengers; split 70/15/15)"
    for split, idx in ((ds.train, train_idx), (ds.val, val_idx), (ds.test, test_idx)):
        assert np.allclose(split.x.numpy(), (features[idx] - mean) / std, atol=1e-5)
        assert np.array_equal(split.y.numpy(), survived[idx])
    assert np.allclose(ds.train.x.mean(0), 0, atol=1e-5)
    assert np.allclose(ds.train.x.std(0, unbiased=False), 1, atol=1e-4)
    assert ds.val.x.mean(0).abs().max() > 0.01  # val was not standardised with its own statistics


def test_titanic_features_ignore_values_outside_the_trainrows():
    raw, survived = read_titanic()
    train_idx = fraction_split(torch.as_tensor(survived), seed=SPLIT_SEED)[0].numpy()
    others = np.setdiff1d(np.arange(len(raw)), train_idx)
    poisoned = raw.copy()
    poisoned[others, 2] = 1000.0  # absurd ages and ports where only val/test rows are
    poisoned[others, 6] = 1.0
    clean, dirty = titanic_features(raw, train_idx), titanic_features(poisoned, train_idx)
    assert np.array_equal(clean[train_idx], dirty[train_idx])


def test_banknote_matches_a_numpy_reference_standardised_on_train():
    text = (resources.files("actlab.data") / "files" / "banknote_authentication.csv").read_text()
    table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
    y = table[:, 4].astype(np.int64)
    train_idx, _, test_idx = (i.numpy() for i in fraction_split(torch.as_tensor(y), seed=SPLIT_SEED))
    mean, std = table[train_idx, :4].mean(0), table[train_idx, :4].std(0)
    ds = load_dataset("banknote")
    assert "banknote authentication" in ds.description and "1,372" in ds.description
    assert np.allclose(ds.test.x.numpy(), (table[test_idx, :4] - mean) / std, atol=1e-5)
    assert np.array_equal(ds.test.y.numpy(), y[test_idx])
    assert np.bincount(torch.cat([ds.train.y, ds.val.y, ds.test.y]).numpy()).tolist() == [762, 610]


def test_noiseless_spiral_points_lie_on_their_arms():
    x, y = two_spirals(400, 0.0, np.random.default_rng(0))
    t = np.linalg.norm(x, axis=1)  # radius == angle parameter on the arms
    sign = np.where(y == 1, -1.0, 1.0)[:, None]
    assert np.allclose(x, sign * np.column_stack([t * np.cos(t), t * np.sin(t)]))
    assert np.bincount(y).tolist() == [200, 200] and t.max() <= 3 * np.pi


def test_moons_options_change_size_and_noise():
    ds = load_dataset("moons", n_samples=101, noise=0.0)
    assert sum(ds.sizes().values()) == 101 and "101 points" in ds.description
    assert not torch.equal(ds.train.x, load_dataset("moons", n_samples=101, noise=0.3).train.x)
