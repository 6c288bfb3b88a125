"""Trained runs of a run store, loaded back: the run, its data (from its ``data_dir``), its model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from actlab.data import DatasetSplits, load_dataset_spec
from actlab.errors import ActlabError
from actlab.models import make_model
from actlab.store import RunStore


def checkpoint_path(workdir: Path, rid: str) -> Path:
    """Where the weights of a finished run are saved."""
    path = workdir / "checkpoints" / f"{rid}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def find_run(store: RunStore, ref: str) -> dict:
    """The finished run whose id starts with ``ref``."""
    matches = [r for r in store.runs() if r["run_id"].startswith(ref)]
    if len(matches) != 1:
        ids = ", ".join(r["run_id"] for r in store.runs())
        what = "no run" if not matches else f"{len(matches)} runs"
        raise ActlabError(f"{what} in {store.workdir} match {ref!r}; run ids: {ids or 'none'}")
    run = matches[0]
    if run["status"] != "done":
        raise ActlabError(f"run {run['run_id']} is {run['status']}, not done; only trained runs can be loaded")
    return run


def run_data(config: dict) -> DatasetSplits:
    """The dataset of a run config, from the ``data_dir`` it was trained with (if any)."""
    return load_dataset_spec(config["dataset"], config.get("data_dir"))


def run_model(store: RunStore, run: dict, data: DatasetSplits) -> nn.Module:
    """The model of a finished run with its trained weights, in eval mode."""
    cfg = run["config"]
    torch.manual_seed(cfg["seed"])
    model = make_model(cfg["model"], data.input_shape, data.num_classes, cfg["activation"])
    ckpt = checkpoint_path(store.workdir, run["run_id"])
    if not ckpt.exists():
        raise ActlabError(f"run {run['run_id']} has no checkpoint at {ckpt}")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    return model.eval()


@dataclass
class TrainedRun:
    """A finished run with its data and trained model."""

    run: dict
    data: DatasetSplits
    model: nn.Module


def load_run(store: RunStore, ref: str) -> TrainedRun:
    """The finished run ``ref`` (a unique id prefix) of ``store``, its data and its trained model."""
    run = find_run(store, ref)
    data = run_data(run["config"])
    return TrainedRun(run, data, run_model(store, run, data))
