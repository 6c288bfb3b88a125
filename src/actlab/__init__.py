"""actlab: learning, annealing, searching and compressing activation functions.

The public API; everything else is internal machinery.
"""

from actlab.activations import ACTIVATIONS, Site, activation_factory, canonical, make_activation
from actlab.data import DATASETS, DatasetSplits, load_dataset
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
    "load_dataset",
    "make_activation",
    "make_model",
    "run_experiment",
    "train_run",
    "write_report",
]
