"""Dataset loaders on tiny files written in the real formats: IDX (MNIST, Fashion-MNIST) and CIFAR-10 pickles."""

from __future__ import annotations

import pathlib
import pickle

import numpy as np
import pytest
import torch

from actlab.data import load_dataset
from actlab.data.cifar import CIFAR10_MEAN, CIFAR10_STD
from actlab.data.images import FASHION_MEAN, FASHION_STD, MNIST_MEAN, MNIST_STD
from data_helpers import idx_bytes, rows, unnormalise, write_idx_tree

from actlab.errors import ActlabError


# ---------------------------------------------------------------- MNIST-family files


IDX_SETS = [("mnist", "MNIST", MNIST_MEAN, MNIST_STD), ("fashion_mnist", "FashionMNIST", FASHION_MEAN, FASHION_STD)]


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("point_at", ["root", "folder", "raw"])
@pytest.mark.parametrize(("name", "folder", "mean", "std"), IDX_SETS, ids=[s[0] for s in IDX_SETS])
def test_idx_loader_recovers_the_written_pixels_and_labels(tmp_path, name, folder, mean, std, point_at, gz):
    written = write_idx_tree(tmp_path / folder / "raw", gz)
    data_dir = {"root": tmp_path, "folder": tmp_path / folder, "raw": tmp_path / folder / "raw"}[point_at]
    ds = load_dataset(name, data_dir=str(data_dir), val_size=10)
    assert ds.sizes() == {"train": 20, "val": 10, "test": 10} and ds.input_shape == (1, 28, 28)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    test_images, test_labels = written["t10k"]
    assert np.array_equal(unnormalise(ds.test.x, mean, std)[:, 0], test_images)  # official test, in order
    assert np.array_equal(ds.test.y.numpy(), test_labels)
    train_images, train_labels = written["train"]
    loaded = np.concatenate([unnormalise(s.x, mean, std) for s in (ds.train, ds.val)])
    loaded_labels = torch.cat([ds.train.y, ds.val.y]).numpy().astype(np.uint8)
    pairs = np.concatenate([loaded.reshape(30, -1), loaded_labels[:, None]], axis=1)
    assert np.array_equal(rows(pairs), rows(np.concatenate([train_images.reshape(30, -1), train_labels[:, None]], 1)))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_file_datasets_without_data_dir_ask_for_it(name):
    with pytest.raises(ActlabError, match="--data-dir"):
        load_dataset(name)


def test_idx_missing_file_names_it_and_the_layout(tmp_path):
    write_idx_tree(tmp_path / "MNIST" / "raw", gz=True)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ActlabError, match=r"t10k-labels-idx1-ubyte\[\.gz\] not found.*MNIST/raw"):
        load_dataset("mnist", data_dir=tmp_path, val_size=10)
    with pytest.raises(ActlabError, match="does not exist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere", val_size=10)


def _corrupt(path: pathlib.Path, how: str) -> None:
    data = path.read_bytes()
    if how == "bad magic":
        path.write_bytes((2049).to_bytes(4, "big") + data[4:])
    elif how == "truncated":
        path.write_bytes(data[:-100])
    elif how == "bad gzip":
        path.with_suffix(path.suffix + ".gz").write_bytes(b"not gzip at all")
        path.unlink()


@pytest.mark.parametrize("how", ["bad magic", "truncated", "bad gzip"])
def test_idx_corrupt_file_error_names_the_file(tmp_path, how):
    write_idx_tree(tmp_path / "FashionMNIST" / "raw", gz=False)
    target = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    _corrupt(target, how)
    with pytest.raises(ActlabError, match="train-images-idx3-ubyte"):
        load_dataset("fashion_mnist", data_dir=tmp_path, val_size=10)


def test_idx_image_and_label_counts_must_match(tmp_path):
    raw_dir = tmp_path / "MNIST" / "raw"
    write_idx_tree(raw_dir, gz=False)
    (raw_dir / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, np.uint8), 2049))
    with pytest.raises(ActlabError, match="30 images but .*train-labels-idx1-ubyte holds 29 labels"):
        load_dataset("mnist", data_dir=tmp_path, val_size=10)


def test_val_size_must_leave_trainingrows(tmp_path):
    write_idx_tree(tmp_path / "MNIST" / "raw", gz=True)
    with pytest.raises(ActlabError, match="val_size=5000 .* 30 rows"):
        load_dataset("mnist", data_dir=tmp_path)


# ---------------------------------------------------------------- CIFAR-10 files


def _write_cifar(folder: pathlib.Path, protocol: int) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = [(2 * i + j) % 10 for j in range(4)]
        batch = {b"batch_label": name.encode(), b"data": data, b"labels": labels, b"filenames": [b"x.png"] * 4}
        if name == "test_batch":  # the official Python 2 pickles read back with str keys
            batch = {key.decode(): value for key, value in batch.items()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_loader_recovers_the_written_pixels_and_labels(tmp_path, protocol):
    written = _write_cifar(tmp_path / "cifar-10-batches-py", protocol)
    ds = load_dataset("cifar10", data_dir=tmp_path, val_size=5)
    assert ds.sizes() == {"train": 15, "val": 5, "test": 4} and ds.input_shape == (3, 32, 32)
    test_data, test_labels = written["test_batch"]
    # the 3072 values of a row are the red, green and blue 32x32 planes in turn
    assert np.array_equal(unnormalise(ds.test.x, CIFAR10_MEAN, CIFAR10_STD).reshape(4, 3072), test_data)
    assert ds.test.y.tolist() == test_labels
    train = [written[f"data_batch_{k}"] for k in range(1, 6)]
    expected = np.column_stack([np.concatenate([d for d, _ in train]), np.concatenate([lab for _, lab in train])])
    loaded = np.concatenate(
        [unnormalise(s.x, CIFAR10_MEAN, CIFAR10_STD).reshape(-1, 3072) for s in (ds.train, ds.val)]
    )
    labels = torch.cat([ds.train.y, ds.val.y]).numpy()
    assert np.array_equal(rows(np.column_stack([loaded, labels]).astype(np.uint8)), rows(expected.astype(np.uint8)))
    same_dir = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py", val_size=5)
    assert torch.equal(same_dir.train.x, ds.train.x)


def test_cifar_missing_batch_is_named(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py", 2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(ActlabError, match="data_batch_3 not found"):
        load_dataset("cifar10", data_dir=tmp_path, val_size=5)


def test_cifar_truncated_batch_is_named(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py", 2)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ActlabError, match="data_batch_2 is not a readable CIFAR-10 batch"):
        load_dataset("cifar10", data_dir=tmp_path, val_size=5)


class _Trap:
    """Unpickling this would create the file ``target``."""

    def __init__(self, target: pathlib.Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (self.target,))


def test_cifar_batch_cannot_run_code_when_unpickled(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py", 2)
    target = tmp_path / "pwned"
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({b"data": _Trap(target)}))
    with pytest.raises(ActlabError, match="data_batch_1 .*pathlib"):
        load_dataset("cifar10", data_dir=tmp_path, val_size=5)
    assert not target.exists()
    assert pickle.loads(pickle.dumps(_Trap(target))) is None and target.exists()  # the trap is real
