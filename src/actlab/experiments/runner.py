"""Running an experiment grid into the run store, resumably."""

from __future__ import annotations

import multiprocessing as mp
import re
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from actlab import _devices
from actlab.activations.sites import activation_curves
from actlab.data import load_dataset_spec
from actlab.experiments.config import ExperimentConfig, import_plugin
from actlab.experiments.runs import checkpoint_path
from actlab.experiments.tensorboard import TensorBoardLogger
from actlab.models import count_parameters, make_model
from actlab.errors import ActlabError
from actlab.store import RunStore, lease
from actlab.store.runstore import RunClaim
from actlab.train import TrainConfig, train_run


def grid(cfg: ExperimentConfig) -> list[dict]:
    """The resolved config of every run in the grid, in a stable order."""
    train = cfg.train.model_dump()
    # data_dir only where given, so the ids of runs on shipped datasets stay what they were
    where = {"data_dir": cfg.data_dir} if cfg.data_dir is not None else {}
    if cfg.plugins:  # worker processes import them before building the run's model
        where |= {"plugins": list(cfg.plugins)}
    runs = []
    for dataset in cfg.datasets:
        for model in cfg.models:
            for act in cfg.activations:
                for seed in cfg.seeds:
                    runs.append({"dataset": dataset, "model": model, "activation": act,
                                 "seed": seed, "train": train | {"seed": seed}} | where)
    return runs


LEASE_S = 120.0  # a run whose worker stops renewing its claim for this long is taken over


def run_experiment(cfg: ExperimentConfig, workdir: str | Path, progress: bool = True, *, workers: int = 0,
                   ray: bool = False, ray_address: str | None = None, threads: int = 1,
                   device: str | None = None) -> RunStore:
    """Train every run of the grid that is not finished yet; return the store.

    Finished runs (``done`` or ``diverged``) are skipped, so re-running after an
    interruption continues where it stopped. A run that raises is stored as
    ``failed`` with its error and the grid goes on. Runs are claimed one at a
    time from the store's queue, so any number of processes (``workers``
    spawned here, one thread each; Ray tasks with ``ray``; or several
    ``actlab run`` on one work directory) train each run exactly once; a run
    seeds itself, so the results equal a sequential run's at the same thread count.
    ``device`` (e.g. ``"cuda"``) is where each run trains; it is not part of the run's config.
    """
    _devices.resolve(device)  # a typo or a machine without CUDA: one line before any run starts
    store = RunStore(workdir)
    configs = grid(cfg)
    store.enqueue(cfg.name, configs)
    if workers < 0:
        raise ActlabError(f"workers must be >= 0 (0: train in this process), got {workers}")
    if ray or ray_address:
        _drive(store, cfg.name, len(configs), progress, _ray_tasks(store.workdir, cfg.name, workers or 1, ray_address,
                                                                    threads, device))
    elif workers:
        _drive(store, cfg.name, len(configs), progress, _processes(store.workdir, cfg.name, workers, threads, device))
    else:
        _in_process(store, cfg, progress, device)
    return store


def _in_process(store: RunStore, cfg: ExperimentConfig, progress: bool, device: str | None = None) -> None:
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        runs_task = bar.add_task(f"{cfg.name}: runs", total=store.open_runs(cfg.name))

        def on_run(run: dict, data) -> Callable[[], None]:
            batches = -(-len(data.train) // run["train"]["batch_size"]) * run["train"]["epochs"]
            task = bar.add_task(f"  {run['activation'][:40]} seed {run['seed']}", total=batches)
            return lambda: bar.advance(task)

        def after_run() -> None:
            bar.remove_task(bar.task_ids[-1])
            bar.advance(runs_task)

        work(store, cfg.name, on_run=on_run, after_run=after_run, device=device)


def work(store: RunStore, experiment: str, *, alive: Callable[[], bool] | None = None, on_run=None,
         after_run=None, device: str | None = None) -> int:
    """Claim and train runs of ``experiment`` until every run is finished (waiting for runs other
    processes hold, and taking over those whose holder dies); returns how many this worker finished."""
    worker, datasets, finished = lease.worker_id("grid"), {}, 0
    while alive is None or alive():
        claim = store.claim(experiment, worker, LEASE_S)
        if claim is None:
            if not store.open_runs(experiment):
                return finished
            time.sleep(0.5)  # runs held by other processes: wait, and take over any whose holder dies
            continue
        run = claim.config
        key = (run["dataset"], run.get("data_dir"))
        if key not in datasets:
            datasets[key] = load_dataset_spec(run["dataset"], run.get("data_dir"))
        on_batch = on_run(run, datasets[key]) if on_run else None
        renew, close = _renewer(store.workdir, claim)
        with lease.heartbeat(renew, LEASE_S / 4, close):
            finished += _one_run(store, experiment, claim, datasets[key], on_batch, device)
        if after_run:
            after_run()
    return finished


def _renewer(workdir: Path, claim: RunClaim) -> tuple[Callable[[], bool], Callable[[], None]]:
    held: list[RunStore] = []

    def renew() -> bool:
        if not held:
            held.append(RunStore(workdir))
        return held[0].renew(claim, LEASE_S)

    return renew, lambda: held and held[0].close()


def worker_main(workdir: str, experiment: str, threads: int = 1, ray_worker: bool = False,
                device: str | None = None) -> int:
    """A spawned (or Ray) worker: claims runs until the grid is done or the process that started
    it is gone (so killing a driver leaves no worker behind)."""
    if not ray_worker:
        lease.die_with_parent()
    torch.set_num_threads(threads)
    store = RunStore(workdir)
    try:
        return work(store, experiment, alive=lease.parent_watch(), device=device)
    finally:
        store.close()


def _processes(workdir: Path, experiment: str, n: int, threads: int, device: str | None = None):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(str(workdir), experiment, threads, False, device), daemon=True)
             for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield lambda: any(p.is_alive() for p in procs)
    finally:
        for p in procs:  # every exit path, Ctrl-C included, ends the workers
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)


def _ray_tasks(workdir: Path, experiment: str, n: int, address: str | None, threads: int,
               device: str | None = None):
    try:
        import ray
    except ImportError:
        raise ActlabError("--ray needs Ray: pip install 'actlab[ray]'") from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else n, include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
    where, refs = _devices.resolve(device), []
    try:
        gpus = _devices.ray_gpus(where, n, ray.cluster_resources().get("GPU", 0))
        task = ray.remote(num_cpus=1, num_gpus=gpus)(worker_main)
        refs = [task.remote(str(workdir), experiment, threads, True, _devices.ray_task_device(where))
                for _ in range(n)]
        yield lambda: bool(ray.wait(refs, num_returns=len(refs), timeout=0)[1])
        ray.get(refs)  # a task's error surfaces here
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _drive(store: RunStore, experiment: str, total: int, progress: bool, backend) -> None:
    """Wait for the workers, showing runs done, running and left."""
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(experiment, total=total)
        gen = iter(backend)
        working = next(gen)
        try:
            while store.open_runs(experiment) and working():
                c = store.counts(experiment)
                done = c["done"] + c["diverged"] + c["failed"]
                bar.update(task, completed=done,
                           description=f"{experiment}: {done} done, {c['running']} running, {c['pending']} left")
                time.sleep(0.5)
            c = store.counts(experiment)
            bar.update(task, completed=c["done"] + c["diverged"] + c["failed"])
            next(gen, None)
        finally:
            gen.close()
    if store.open_runs(experiment):
        raise ActlabError(f"{store.open_runs(experiment)} runs of {experiment} are unfinished: the workers stopped; "
                          "run the same command again to continue")


def _one_run(store: RunStore, experiment: str, claim: RunClaim, data, on_batch, device: str | None = None) -> int:
    rid, run = claim.run_id, claim.config
    for name in run.get("plugins", ()):
        import_plugin(name)
    torch.manual_seed(run["seed"])
    model = make_model(run["model"], data.input_shape, data.num_classes, run["activation"])
    info = {"dataset_description": data.description, "params": count_parameters(model)}
    saved = resume_path(store.workdir, rid)
    state = _load_state(saved)
    store.start_run(rid, experiment, run, info, keep_epochs=state is not None)
    if state is None:
        store.put_artifact(rid, "curves_before", activation_curves(model))
    tb = TensorBoardLogger(tensorboard_dir(store.workdir, experiment, run, rid), model)

    def on_epoch(record: dict) -> None:
        store.log_epoch(rid, record)
        tb.log(record)

    for record in state["history"] if state else ():  # the epochs before the kill, as they were
        on_epoch(record)
    try:
        result = train_run(model, data, TrainConfig(**run["train"]), on_epoch=on_epoch, on_batch=on_batch,
                           resume=state, save_state=lambda s: _save_state(s, saved), device=device)
    except Exception as exc:  # noqa: BLE001 — a broken run must not stop the grid
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        return int(store.finish_run(rid, "failed", error=error, claim=claim))
    finally:
        tb.close()
    model.cpu()  # curves and the checkpoint are on the CPU whatever the run trained on
    store.put_artifact(rid, "curves_after", activation_curves(model))
    info["train_time"] = result.train_time
    if result.status == "done" and store.holds(claim):  # saved before the run is marked finished
        torch.save(model.state_dict(), checkpoint_path(store.workdir, rid))
    finished = store.finish_run(rid, result.status, test=result.test, diverged_epoch=result.diverged_epoch,
                                info=info, claim=claim)
    saved.unlink(missing_ok=True)
    return int(finished)


def tensorboard_dir(workdir: Path, experiment: str, run: dict, rid: str) -> Path:
    """``tensorboard/<experiment>/<activation>/seed<N>-<dataset>-<model>-<run id>``: TensorBoard lists
    runs by activation and seed; the rest keeps the name unique."""
    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.,=()\[\]+-]+", "_", text)

    leaf = f"seed{run['seed']}-{safe(run['dataset'])}-{safe(run['model'])}-{rid[:6]}"
    return workdir / "tensorboard" / experiment / safe(run["activation"]) / leaf


def resume_path(workdir: Path, rid: str) -> Path:
    """Where an unfinished run keeps what it needs to continue after its last epoch."""
    return checkpoint_path(workdir, rid).with_name(f"{rid}.resume.pt")


def _save_state(state: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: a kill leaves the previous epoch's state or this one, never half


def _load_state(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable state only costs a restart from the first epoch
        return None
