"""Experiments: TOML grids, the resumable runner, results tables and the HTML report."""

from actlab.experiments.config import ExperimentConfig, load_config, parse_config
from actlab.experiments.report import write_report
from actlab.experiments.results import export, run_rows, summary_rows
from actlab.experiments.runner import grid, run_experiment

__all__ = [
    "ExperimentConfig",
    "export",
    "grid",
    "load_config",
    "parse_config",
    "run_experiment",
    "run_rows",
    "summary_rows",
    "write_report",
]
