"""One training run: Adam, softmax cross-entropy, per-epoch metrics, divergence guard."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from actlab import _devices
from actlab.data.base import DatasetSplits, Split
from actlab.train.config import LR_SCHEDULES, TrainConfig
from actlab.train.metrics import classification_metrics

EpochCallback = Callable[[dict], None]


@dataclass
class TrainResult:
    status: str  # "done" or "diverged"
    history: list[dict] = field(default_factory=list)
    test: dict = field(default_factory=dict)
    diverged_epoch: int | None = None
    train_time: float = 0.0


def activation_scalars(model: nn.Module) -> dict[str, float]:
    """Every scalar activation parameter and every ``scalars()`` diagnostic, by module path."""
    out: dict[str, float] = {}
    for name, module in model.named_modules():
        if hasattr(module, "scalars"):
            for key, value in module.scalars().items():
                out[f"act/{name}/{key}"] = float(value)
    for name, p in model.named_parameters():
        if p.numel() == 1:
            out[f"param/{name}"] = float(p.detach())
    return out


def _param_groups(model: nn.Module, lr: float) -> list[dict]:
    """Parameters tagged with ``actlab_lr`` (e.g. annealing angles) get their own rate."""
    groups: dict[float, list[Tensor]] = {}
    for p in model.parameters():
        if p.requires_grad:
            groups.setdefault(float(getattr(p, "actlab_lr", lr)), []).append(p)
    return [{"params": ps, "lr": rate} for rate, ps in groups.items()]


def _penalty(weights: list[Tensor], regularizers: list[nn.Module], l1: float, l2: float) -> Tensor | float:
    """L1/L2 on the weights of Linear/Conv layers plus the activations' own regularization()."""
    total: Tensor | float = 0.0
    if l1 or l2:
        for w in weights:
            total = total + l1 * w.abs().sum() + l2 * w.square().sum()
    for m in regularizers:
        total = total + m.regularization()
    return total


def _set_progress(modules: list[nn.Module], step: int, epoch: float) -> None:
    for m in modules:
        m.set_progress(step, epoch)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, num_classes: int, batch_size: int = 1000) -> dict[str, float]:
    """Loss, accuracy and macro precision/recall/F1 of ``model`` on a split (on the model's device)."""
    model.eval()
    device = _devices.of(model)
    losses, preds = [], []
    for i in range(0, len(split), batch_size):
        y = split.y[i : i + batch_size].to(device)
        logits = model(split.x[i : i + batch_size].to(device))
        losses.append(F.cross_entropy(logits, y, reduction="sum").cpu())
        preds.append(logits.argmax(1).cpu())
    pred = torch.cat(preds)
    metrics = classification_metrics(split.y, pred, num_classes)
    metrics["loss"] = float(torch.stack(losses).sum() / max(len(split), 1))
    return metrics


def train_run(
    model: nn.Module,
    data: DatasetSplits,
    cfg: TrainConfig,
    on_epoch: EpochCallback | None = None,
    on_batch: Callable[[], None] | None = None,
    *,
    resume: dict | None = None,
    save_state: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``model`` on ``data.train``, validating every epoch; test at the end.

    A non-finite loss stops the run and marks it ``diverged`` with its epoch
    instead of raising, so a batch of runs goes on. After every epoch
    ``save_state`` gets everything needed to continue (model, optimiser,
    schedule, both random generators, history); ``resume`` with such a state
    continues at the next epoch, with the same results as a run never stopped.
    ``device`` (e.g. ``"cuda"``) moves the model there and each batch as it is used.
    """
    device = _devices.resolve(device)
    if device is not None:
        model.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(_param_groups(model, cfg.lr))
    steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
    sched = LR_SCHEDULES.get(cfg.lr_schedule)(opt, cfg.epochs * steps_per_epoch)
    progressive = [m for m in model.modules() if hasattr(m, "set_progress")]
    # found once per run: scanning every module on every batch is wasted work on the hot path
    weights = [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    regularizers = [m for m in model.modules() if hasattr(m, "regularization")]
    result, step, start, first, before = TrainResult("done"), 0, time.perf_counter(), 1, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        first, step, before = resume["epoch"] + 1, resume["step"], resume["train_time"]
        result.history = list(resume["history"])
    for epoch in range(first, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(len(data.train), generator=gen)
        loss_sum, seen = 0.0, 0
        preds, targets = [], []
        for i in range(0, len(order), cfg.batch_size):
            _set_progress(progressive, step, step / steps_per_epoch)
            idx = order[i : i + cfg.batch_size]
            x, y = data.train.x[idx], data.train.y[idx]
            if device is not None:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                result.status, result.diverged_epoch = "diverged", epoch
                break
            total = loss + _penalty(weights, regularizers, cfg.l1, cfg.l2)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
            preds.append(logits.detach().argmax(1).cpu())
            targets.append(y.cpu())
            if on_batch:
                on_batch()
        if result.status == "diverged":
            break
        _set_progress(progressive, step, step / steps_per_epoch)
        train = classification_metrics(torch.cat(targets), torch.cat(preds), data.num_classes)
        val = evaluate(model, data.val, data.num_classes, cfg.eval_batch_size)
        if not math.isfinite(val["loss"]):
            result.status, result.diverged_epoch = "diverged", epoch
            break
        record = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1)}
        record |= {f"train_{k}": v for k, v in train.items()}
        record |= {f"val_{k}": v for k, v in val.items()}
        record |= {"time": time.perf_counter() - t0, "lr": opt.param_groups[0]["lr"]}
        record |= activation_scalars(model)
        result.history.append(record)
        if save_state:  # before the epoch is committed: a kill in between recomputes nothing twice
            save_state({"epoch": epoch, "step": step, "history": result.history, "model": model.state_dict(),
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                        "train_time": before + time.perf_counter() - start})
        if on_epoch:
            on_epoch(record)
    result.train_time = before + time.perf_counter() - start
    if result.status == "done":
        result.test = evaluate(model, data.test, data.num_classes, cfg.eval_batch_size)
    return result
