"""Experiments: TOML grids, the resumable runner, stored runs loaded back and compressed,
results tables, the HTML report and the pipeline of ``actlab run`` and ``actlab demo``."""

from actlab.experiments.compressed import compress_run
from actlab.experiments.config import ExperimentConfig, load_config, parse_config
from actlab.experiments.pipeline import run_pipeline
from actlab.experiments.report import write_report
from actlab.experiments.results import export, run_rows, summary_rows
from actlab.experiments.runner import grid, run_experiment
from actlab.experiments.runs import TrainedRun, load_run

__all__ = [
    "ExperimentConfig",
    "TrainedRun",
    "compress_run",
    "export",
    "grid",
    "load_config",
    "load_run",
    "parse_config",
    "run_experiment",
    "run_pipeline",
    "run_rows",
    "summary_rows",
    "write_report",
]
