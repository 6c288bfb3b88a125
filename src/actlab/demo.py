"""The main job (``make demo``): the MNIST-10k CNN with fixed, learned and annealed activations.

Every run trains the same CNN for the same number of epochs with Adam and
softmax cross-entropy on MNIST-10k (the official 10k test images re-split
8k/1k/1k; the full 60k training set is not shipped). The grid is
``experiments/configs/demo.toml``; any other config can take its place.
"""

from __future__ import annotations

import time
from pathlib import Path

from actlab._console import console as make_console
from actlab.experiments import ExperimentConfig, load_config, parse_config
from actlab.experiments.pipeline import run_pipeline

CONFIG = Path(__file__).parent / "experiments" / "configs" / "demo.toml"
# Learned activations whose trained model is also shown compressed to a 64-knot lookup table.
COMPRESS = ("subnet", "slaf")


def demo_config(config: str | Path | ExperimentConfig = CONFIG, epochs: int | None = None) -> ExperimentConfig:
    """The demo's grid (or ``config``), with ``epochs`` per run where given."""
    cfg = config if isinstance(config, ExperimentConfig) else load_config(config)
    if epochs is not None:
        cfg = parse_config(cfg.model_dump() | {"train": cfg.train.model_dump() | {"epochs": epochs}}, "demo config")
    return cfg


def run_demo(workdir: Path, epochs: int | None = None, progress: bool = True,
             config: str | Path | ExperimentConfig = CONFIG) -> list[dict]:
    """Train the demo grid into ``workdir``, print the table, write the HTML report."""
    start = time.perf_counter()
    cfg = demo_config(config, epochs)
    seeds = ", ".join(map(str, cfg.seeds))
    summary, _ = run_pipeline(cfg, workdir, progress=progress, compress=COMPRESS, title="actlab demo",
                              table_title=f"actlab demo — {cfg.train.epochs} epochs, seed {seeds}, "
                                          f"{', '.join(cfg.models)}")
    make_console().print(f"wall time: {time.perf_counter() - start:.0f} s")
    return summary
