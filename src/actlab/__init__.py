"""actlab: learning, annealing, searching and compressing activation functions.

The public API; everything else is internal machinery.
"""

from actlab import annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.activations import (
    ACTIVATIONS, Site, activation_factory, canonical, make_activation, register_activation,
)
from actlab.annealing import SCHEDULES, make_schedule
from actlab.activations.convert import ConvertedSite, convert
from actlab.compress import compress_model, model_cost, snap_module
from actlab.compress.saving import load, save
from actlab.data import DATASETS, DatasetSplits, dataset_names, load_dataset
from actlab.errors import ActlabError, SpecError, UnknownNameError
from actlab.experiments import ExperimentConfig, load_config, run_experiment, write_report
from actlab.models import MODELS, count_parameters, make_model
from actlab.store import RunStore
from actlab.search import enumerate_space, init_search, run_search
from actlab.train import TrainConfig, TrainResult, evaluate, train_run

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "DATASETS",
    "MODELS",
    "ActlabError",
    "DatasetSplits",
    "ExperimentConfig",
    "RunStore",
    "SCHEDULES",
    "Site",
    "SpecError",
    "TrainConfig",
    "TrainResult",
    "UnknownNameError",
    "ConvertedSite",
    "activation_factory",
    "canonical",
    "compress_model",
    "convert",
    "count_parameters",
    "evaluate",
    "load",
    "load_config",
    "dataset_names",
    "enumerate_space",
    "init_search",
    "load_dataset",
    "make_schedule",
    "model_cost",
    "make_activation",
    "make_model",
    "run_experiment",
    "register_activation",
    "run_search",
    "save",
    "snap_module",
    "train_run",
    "write_report",
]
