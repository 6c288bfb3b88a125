"""Training loop: smoke run, metrics, determinism, divergence, penalties and param groups."""

import math

import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support
from torch import nn

from actlab import TrainConfig, load_dataset, make_model, train_run
from actlab.train import classification_metrics
from actlab.train.loop import _param_groups


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


def test_training_smoke_run_learns_moons_and_records_every_metric(moons):
    torch.manual_seed(0)
    model = make_model("mlp(widths=[32,32])", moons.input_shape, moons.num_classes, "tanh")
    result = train_run(model, moons, TrainConfig(epochs=15, lr=1e-2, batch_size=32))
    assert result.status == "done" and len(result.history) == 15
    assert result.test["acc"] > 0.9
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < first["train_loss"]
    for key in ["train_loss", "train_acc", "val_loss", "val_acc", "val_precision", "val_recall", "val_f1",
                "train_f1", "time", "lr"]:
        assert key in last and math.isfinite(last[key])


def test_cnn_trains_on_a_slice_of_mnist10k():
    data = load_dataset("mnist10k")
    data.train.x, data.train.y = data.train.x[:512], data.train.y[:512]
    torch.manual_seed(0)
    model = make_model("cnn", data.input_shape, data.num_classes, "relu")
    result = train_run(model, data, TrainConfig(epochs=2, lr=3e-3))
    assert result.status == "done" and result.test["acc"] > 0.5


def test_same_seed_gives_identical_runs(moons):
    def run():
        torch.manual_seed(3)
        model = make_model("mlp(widths=[16])", moons.input_shape, 2, "relu")
        return train_run(model, moons, TrainConfig(epochs=2, seed=3))

    a, b = run(), run()
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.test == b.test


def test_nan_loss_marks_run_diverged_with_epoch_instead_of_raising(moons):
    model = make_model("mlp(widths=[8])", moons.input_shape, 2, "exp(exp(exp(x)))")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50)
    result = train_run(model, moons, TrainConfig(epochs=3, lr=1.0))
    assert result.status == "diverged" and result.diverged_epoch == 1 and result.test == {}


def test_macro_metrics_match_scikit_learn():
    gen = torch.Generator().manual_seed(1)
    y_true = torch.randint(0, 5, (300,), generator=gen)
    y_pred = torch.where(torch.rand(300, generator=gen) < 0.6, y_true, torch.randint(0, 5, (300,), generator=gen))
    y_pred[y_pred == 4] = 3  # class 4 never predicted: precision 0 by convention
    ours = classification_metrics(y_true, y_pred, 5)
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert ours["precision"] == pytest.approx(p) and ours["recall"] == pytest.approx(r) and ours["f1"] == pytest.approx(f)
    assert ours["acc"] == pytest.approx(float((y_true == y_pred).double().mean()))


def test_l1_l2_penalties_shrink_weights(moons):
    def weight_norm(**penalty):
        torch.manual_seed(0)
        model = make_model("mlp(widths=[16])", moons.input_shape, 2, "relu")
        train_run(model, moons, TrainConfig(epochs=3, lr=1e-2, **penalty))
        return sum(m.weight.abs().sum() for m in model.modules() if isinstance(m, nn.Linear))

    plain = weight_norm()
    assert weight_norm(l1=1e-2) < plain and weight_norm(l2=1e-2) < plain


def test_parameters_tagged_with_actlab_lr_get_their_own_group():
    model = nn.Linear(2, 2)
    model.bias.actlab_lr = 0.5
    groups = {g["lr"]: g["params"] for g in _param_groups(model, 1e-3)}
    assert groups[0.5] == [model.bias] and groups[1e-3] == [model.weight]


def test_unknown_lr_schedule_is_a_clear_error(moons):
    from actlab.errors import UnknownNameError

    model = make_model("mlp(widths=[4])", moons.input_shape, 2, "relu")
    with pytest.raises(UnknownNameError, match="cosine"):
        train_run(model, moons, TrainConfig(epochs=1, lr_schedule="cosin"))
