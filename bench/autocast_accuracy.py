"""bfloat16 autocast training against float32, for every learnable family (issue 15, item 2).

The ``cnn`` on MNIST-10k (8k train, 1k test), one epoch of Adam (lr 2e-3,
batch 64), once in float32 and once with the forward under
``torch.autocast("cpu", dtype=torch.bfloat16)`` (parameters and optimiser stay
float32; actlab's activations compute half inputs in float32 and round once).
Same seed, same batches; test accuracy evaluated in float32. Goal: the autocast
accuracy within 0.5 percentage point of float32 (mean over seeds).

    python bench/autocast_accuracy.py [--seeds 3]   # writes bench/results/autocast_accuracy.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import cpu_info  # bench/_timing.py, beside this script

from actlab.data import load_dataset_spec
from actlab.models import make_model

FAMILIES = ["relu", "slaf(degree=4,basis=chebyshev)", "slaf(degree=4,basis=rbf)", "spline(knots=32)", "spline(knots=32,order=3)", "rational",
            "subnet(hidden=8)"]
GOAL_PP = 0.5
OUT = Path(__file__).parent / "results"


def train_once(activation: str, seed: int, autocast: bool, data) -> dict:
    torch.manual_seed(seed)
    model = make_model("cnn", data.input_shape, data.num_classes, activation)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    order = torch.randperm(len(data.train.y), generator=torch.Generator().manual_seed(seed))
    losses, start = [], time.perf_counter()
    model.train()
    for i in range(0, len(order), 64):
        idx = order[i:i + 64]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(data.train.x[idx]).float(), data.train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        acc = float((model(data.test.x).argmax(1) == data.test.y).double().mean())
    k = max(1, len(losses) // 10)
    return {"activation": activation, "seed": seed, "autocast": autocast, "test_acc": acc,
            "loss_first_tenth": statistics.fmean(losses[:k]), "loss_last_tenth": statistics.fmean(losses[-k:]),
            "train_s": time.perf_counter() - start}


def markdown(rows: list[dict], seeds: int, description: str) -> str:
    lines = ["# bfloat16 autocast training against float32", "",
             f"`cnn` on {description}, 1 epoch, Adam 2e-3, batch 64, seeds 0-{seeds - 1}; the forward under "
             "`torch.autocast(\"cpu\", dtype=torch.bfloat16)` or in float32; test accuracy in float32, "
             f"mean ± std over seeds. Goal: |autocast - float32| <= {GOAL_PP} pp. CPU: {cpu_info()['name']} ({cpu_info()['isa']}), one thread.",
             "", "| activation | float32 test acc % | autocast bf16 test acc % | difference pp | loss first → last tenth "
             "(autocast) | goal |", "|---|---|---|---|---|---|"]
    for act in dict.fromkeys(r["activation"] for r in rows):
        f32 = [r["test_acc"] for r in rows if r["activation"] == act and not r["autocast"]]
        bf = [r for r in rows if r["activation"] == act and r["autocast"]]
        diff = 100 * (statistics.fmean(r["test_acc"] for r in bf) - statistics.fmean(f32))
        loss = f"{statistics.fmean(r['loss_first_tenth'] for r in bf):.3f} → {statistics.fmean(r['loss_last_tenth'] for r in bf):.3f}"
        lines.append(f"| {act} | {_pm(f32)} | {_pm([r['test_acc'] for r in bf])} | {diff:+.2f} | {loss} | "
                     f"{'met' if abs(diff) <= GOAL_PP else 'missed'} |")
    return "\n".join(lines) + "\n"


def _pm(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.2f} (n = 1)"
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset_spec("mnist10k")
    rows = []
    for act in FAMILIES:
        for seed in range(args.seeds):
            for autocast in (False, True):
                rows.append(train_once(act, seed, autocast, data))
                r = rows[-1]
                print(f"{act} seed {seed} {'bf16' if autocast else 'f32'}: {100 * r['test_acc']:.2f} % "
                      f"({r['train_s']:.0f} s)", flush=True)
    text = markdown(rows, args.seeds, getattr(data, "description", "MNIST-10k"))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "autocast_accuracy.json").write_text(json.dumps(rows, indent=2))
    (OUT / "autocast_accuracy.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
