"""actlab: learning, annealing, searching and compressing activation functions.

The public API; everything else is internal machinery.
"""

from actlab import annealing  # noqa: F401  (registers theta_relu and anneal)
from actlab.activations import ACTIVATIONS, Site, activation_factory, canonical, make_activation
from actlab.annealing import SCHEDULES, make_schedule
from actlab.data import DATASETS, DatasetSplits, dataset_names, load_dataset
from actlab.errors import ActlabError, SpecError, UnknownNameError
from actlab.experiments import ExperimentConfig, load_config, run_experiment, write_report
from actlab.models import MODELS, count_parameters, make_model
from actlab.store import RunStore
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
    "activation_factory",
    "canonical",
    "count_parameters",
    "evaluate",
    "load_config",
    "dataset_names",
    "load_dataset",
    "make_schedule",
    "make_activation",
    "make_model",
    "run_experiment",
    "train_run",
    "write_report",
]
