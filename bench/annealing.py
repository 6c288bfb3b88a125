"""Benchmark: does convexity annealing train a deep ReLU MLP better, or at a larger rate?

Trains a deep MLP on mnist10k with theta_relu fixed at 0 (ReLU), annealed
linearly from pi/4 to 0, and trainable (per layer, per neuron), at several
learning rates and seeds, and writes

    OUT/annealing.json      one row per run (final errors, test accuracy, time, theta)
    OUT/youden_<lr>.png     final training error against final validation error
    OUT/curves_<lr>.png     validation accuracy over epochs, mean and range over seeds

Usage: python bench/annealing.py [--epochs 3] [--seeds 0 1] [--lrs 0.001 0.01] [--threads 1]
                                [--out bench/results/annealing]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import actlab.annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.annealing.plots import curves_plot, youden_from_results
from actlab.data import load_dataset
from actlab.models import make_model
from actlab.train import TrainConfig, train_run

QUARTER_PI = 0.7853981633974483


def activations(epochs: int) -> dict[str, str]:
    # the anneal ends one epoch early so the last epoch trains the ReLU network itself
    length = max(epochs - 1, 1)
    return {
        "fixed0": "theta_relu(mode=fixed,theta=0)",
        "linear": f"theta_relu(schedule=linear(start={QUARTER_PI},end=0,epochs={length}))",
        "trainable_layer": "theta_relu(mode=trainable,sharing=layer,lr=0.01)",
        "trainable_neuron": "theta_relu(mode=trainable,sharing=neuron,lr=0.01)",
    }


def run_bench(model: str, epochs: int, seeds: list[int], lrs: list[float], out: Path) -> list[dict]:
    data = load_dataset("mnist10k")
    rows, histories = [], {}
    for lr in lrs:
        for group, spec in activations(epochs).items():
            for seed in seeds:
                torch.manual_seed(seed)
                net = make_model(model, data.input_shape, data.num_classes, spec)
                t0 = time.perf_counter()
                result = train_run(net, data, TrainConfig(epochs=epochs, lr=lr, seed=seed))
                last = result.history[-1] if result.history else {}
                thetas = [v for k, v in last.items() if k.endswith("/theta_deg")]
                rows.append({
                    "run_id": len(rows) + 1, "activation": group, "spec": spec, "lr": lr, "seed": seed,
                    "status": result.status, "seconds": round(time.perf_counter() - t0, 2),
                    "final_train_error": 1 - last["train_acc"] if last else None,
                    "final_val_error": 1 - last["val_acc"] if last else None,
                    "test_acc": result.test.get("acc"),
                    "mean_theta_deg": sum(thetas) / len(thetas) if thetas else None,
                })
                histories.setdefault(lr, {}).setdefault(group, []).append(result.history)
                print(json.dumps(rows[-1]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "annealing.json").write_text(json.dumps({"model": model, "epochs": epochs, "runs": rows}, indent=1))
    for lr in lrs:
        at_lr = [r for r in rows if r["lr"] == lr]
        title = f"{model}, mnist10k, lr={lr}"
        fig = youden_from_results(at_lr, "final_train_error", "final_val_error", label_key="run_id", log=True)
        fig.axes[0].set_title(title)
        fig.savefig(out / f"youden_{lr}.png", dpi=120)
        fig = curves_plot(histories[lr], "val_acc")
        fig.axes[0].set_title(title)
        fig.savefig(out / f"curves_{lr}.png", dpi=120)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp(widths=[64,64,64,64,64,64,64,64])")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.01])
    parser.add_argument("--out", type=Path, default=Path("bench/results/annealing"))
    # one thread: these models are small, and more threads only contend on a shared CPU
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_bench(args.model, args.epochs, args.seeds, args.lrs, args.out)


if __name__ == "__main__":
    main()
