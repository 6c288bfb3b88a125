"""Running an experiment grid into the run store, resumably."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from actlab.activations.sites import activation_curves
from actlab.data import load_dataset_spec
from actlab.experiments.config import ExperimentConfig
from actlab.experiments.runs import checkpoint_path
from actlab.experiments.tensorboard import TensorBoardLogger
from actlab.models import count_parameters, make_model
from actlab.store import FINISHED, RunStore, run_id
from actlab.train import TrainConfig, train_run


def grid(cfg: ExperimentConfig) -> list[dict]:
    """The resolved config of every run in the grid, in a stable order."""
    train = cfg.train.model_dump()
    # data_dir only where given, so the ids of runs on shipped datasets stay what they were
    where = {"data_dir": cfg.data_dir} if cfg.data_dir is not None else {}
    runs = []
    for dataset in cfg.datasets:
        for model in cfg.models:
            for act in cfg.activations:
                for seed in cfg.seeds:
                    runs.append({"dataset": dataset, "model": model, "activation": act,
                                 "seed": seed, "train": train | {"seed": seed}} | where)
    return runs


def run_experiment(cfg: ExperimentConfig, workdir: str | Path, progress: bool = True) -> RunStore:
    """Train every run of the grid that is not finished yet; return the store.

    Finished runs (``done`` or ``diverged``) are skipped, so re-running after an
    interruption continues where it stopped. A run that raises is stored as
    ``failed`` with its error and the grid goes on.
    """
    store = RunStore(workdir)
    todo = [r for r in grid(cfg) if store.status(run_id(r)) not in FINISHED]
    datasets = {}
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        runs_task = bar.add_task(f"{cfg.name}: runs", total=len(todo))
        for run in todo:
            if run["dataset"] not in datasets:
                datasets[run["dataset"]] = load_dataset_spec(run["dataset"], cfg.data_dir)
            data = datasets[run["dataset"]]
            label = f"{run['activation']} seed {run['seed']}"
            batches = -(-len(data.train) // cfg.train.batch_size) * cfg.train.epochs
            batch_task = bar.add_task(f"  {label[:50]}", total=batches)
            _one_run(store, cfg.name, run, data, lambda: bar.advance(batch_task))
            bar.remove_task(batch_task)
            bar.advance(runs_task)
    return store


def _one_run(store: RunStore, experiment: str, run: dict, data, on_batch) -> None:
    rid = run_id(run)
    torch.manual_seed(run["seed"])
    model = make_model(run["model"], data.input_shape, data.num_classes, run["activation"])
    info = {"dataset_description": data.description, "params": count_parameters(model)}
    store.start_run(rid, experiment, run, info)
    store.put_artifact(rid, "curves_before", activation_curves(model))
    tb = TensorBoardLogger(store.workdir / "tensorboard" / experiment / rid, model)

    def on_epoch(record: dict) -> None:
        store.log_epoch(rid, record)
        tb.log(record)

    try:
        result = train_run(model, data, TrainConfig(**run["train"]), on_epoch=on_epoch, on_batch=on_batch)
    except Exception as exc:  # noqa: BLE001 — a broken run must not stop the grid
        store.finish_run(rid, "failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        return
    finally:
        tb.close()
    store.put_artifact(rid, "curves_after", activation_curves(model))
    info["train_time"] = result.train_time
    if result.status == "done":  # saved before the run is marked finished, so a kill cannot lose it
        torch.save(model.state_dict(), checkpoint_path(store.workdir, rid))
    store.finish_run(rid, result.status, test=result.test, diverged_epoch=result.diverged_epoch, info=info)

