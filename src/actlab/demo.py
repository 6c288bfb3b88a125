"""The main job (``make demo``): the MNIST-10k CNN with fixed, learned and annealed activations.

Every run trains the same CNN for the same number of epochs with Adam and
softmax cross-entropy on MNIST-10k (the official 10k test images re-split
8k/1k/1k; the full 60k training set is not shipped). Sized to finish within
about five minutes on two CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path

from actlab._console import console as make_console

from actlab.activations import ACTIVATIONS
from actlab.compress.stored import compress_run
from actlab.experiments import parse_config, run_experiment, write_report
from actlab.experiments.results import export, print_summary

FIXED = ["relu", "sigmoid", "tanh"]
# Learned and annealed activations join the table when their families are registered.
OPTIONAL = [
    "slaf(degree=4,basis=chebyshev)",
    "spline(knots=32)",
    "rational",
    "subnet(hidden=8)",
    "theta_relu(mode=scheduled,schedule=linear(start=0.7853981633974483,end=0,epochs=2))",
    "theta_relu(mode=trainable)",
]
EPOCHS = 3
# Learned activations whose trained model is also shown compressed to a 64-knot lookup table.
COMPRESS = ("subnet", "slaf")


def demo_activations() -> list[str]:
    return FIXED + [spec for spec in OPTIONAL if spec.split("(")[0] in ACTIVATIONS]


def run_demo(workdir: Path, epochs: int | None = None, progress: bool = True) -> list[dict]:
    """Train the demo grid into ``workdir``, print the table, write the HTML report."""
    import actlab  # noqa: F401  (registers every family)

    console = make_console()
    start = time.perf_counter()
    cfg = parse_config({
        "name": "demo", "datasets": ["mnist10k"], "models": ["cnn"],
        "activations": demo_activations(), "seeds": [0], "epochs": epochs or EPOCHS, "batch_size": 64, "lr": 2e-3,
    }, source="demo config")
    store = run_experiment(cfg, workdir, progress=progress)
    for run in store.runs("demo"):
        cfg_run = run["config"]
        if cfg_run["activation"].split("(")[0] in COMPRESS and run["status"] == "done" \
                and "compressed_from" not in cfg_run:
            compress_run(workdir, run["run_id"], method="pwl", knots=64, latency=False)
    _, summary = export(store)
    print_summary(summary, console, title=f"actlab demo — {cfg.epochs} epochs, seed 0, CNN")
    store.close()
    report = write_report(workdir, title="actlab demo")
    console.print(f"report: {report}\nwall time: {time.perf_counter() - start:.0f} s")
    return summary

