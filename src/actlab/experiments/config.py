"""Experiment grids from TOML files, validated with pydantic.

An unknown key or a wrong type is rejected with the key named; names of
datasets, models and activations are checked before any training starts.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actlab._registry import closest
from actlab.activations import canonical, make_activation
from actlab.activations.sites import Site
from actlab.data import DATASETS
from actlab.errors import ActlabError
from actlab.models import MODELS
from actlab.spec import name_and_options
from actlab.train import LR_SCHEDULES, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Keys of TrainConfig an experiment file may also give at its top level; seed comes from ``seeds``.
TRAIN_KEYS = ("epochs", "batch_size", "lr", "l1", "l2", "grad_clip", "lr_schedule")


def _checked(fn, *args, item: int | None = None):
    """Call ``fn``; turn an ActlabError into the ValueError pydantic reports with its key."""
    try:
        return fn(*args)
    except ActlabError as exc:
        where = f"item {item}: " if item is not None else ""
        raise ValueError(where + str(exc).splitlines()[0]) from None


def _named_specs(specs: list[str], registry, what: str) -> list[str]:
    """Check that every ``name(key=value,...)`` spec names an entry of ``registry``; canonical specs."""
    for i, spec in enumerate(specs):
        name, _ = _checked(name_and_options, spec, what, item=i)
        _checked(registry.get, name, item=i)
    return [canonical(s) for s in specs]


class CheckedTrainConfig(TrainConfig):
    """A ``TrainConfig`` whose schedule name is checked when the file is read, not when training starts."""

    @field_validator("lr_schedule")
    @classmethod
    def _schedule_exists(cls, name: str) -> str:
        _checked(LR_SCHEDULES.get, name)
        return name


class ExperimentConfig(BaseModel):
    """A grid: datasets x models x activations x seeds, trained alike."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    datasets: list[str] = Field(..., min_length=1)
    models: list[str] = Field(..., min_length=1)
    activations: list[str] = Field(..., min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    train: CheckedTrainConfig = Field(default_factory=CheckedTrainConfig)
    data_dir: str | None = None
    # modules imported before anything is checked: where a user's own families are registered
    plugins: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in data.get("plugins") or ():
                import_plugin(name)
        return data

    @model_validator(mode="before")
    @classmethod
    def _flat_train_keys(cls, data: object) -> object:
        """Training keys at the top level (``epochs = 5``, as configs have always written them) move
        into ``train``; a key given both ways is rejected."""
        if not isinstance(data, dict):
            return data
        train = data.get("train", {})
        if isinstance(train, TrainConfig):
            train = train.model_dump(exclude_unset=True)
        if not isinstance(train, dict):
            return data
        flat = {k: data[k] for k in TRAIN_KEYS if k in data}
        both = sorted(set(flat) & set(train))
        if both:
            raise ValueError(f"{both[0]!r} is given both at the top level and in [train]")
        return {k: v for k, v in data.items() if k not in flat} | {"train": train | flat}

    @field_validator("name")
    @classmethod
    def _name_stays_inside(cls, name: str) -> str:
        if set(name) == {"."}:  # "." or "..": runs/<name> would not be a folder of its own
            raise ValueError("a name of dots only would write outside runs/")
        return name

    @model_validator(mode="after")
    def _no_duplicates(self) -> ExperimentConfig:
        """A repeated seed, dataset, model or activation would train the same runs twice: keep one."""
        for key in ("datasets", "models", "activations", "seeds"):
            values = getattr(self, key)
            unique = list(dict.fromkeys(values))
            if len(unique) < len(values):
                repeated = sorted({str(v) for v in values if values.count(v) > 1})
                warnings.warn(f"{key}: {', '.join(repeated)} given more than once; each is trained once",
                              UserWarning, stacklevel=2)
                setattr(self, key, unique)
        return self

    @field_validator("activations")
    @classmethod
    def _activations_exist(cls, specs: list[str]) -> list[str]:
        for i, spec in enumerate(specs):
            _checked(make_activation, spec, Site(4, "conv"), item=i)
        return [canonical(s) for s in specs]

    @field_validator("models")
    @classmethod
    def _models_exist(cls, specs: list[str]) -> list[str]:
        return _named_specs(specs, MODELS, "model")

    @field_validator("datasets")
    @classmethod
    def _datasets_exist(cls, specs: list[str]) -> list[str]:
        return _named_specs(specs, DATASETS, "dataset")



def import_plugin(name: str) -> None:
    """Import a module that registers activations (``plugins = ["my_acts"]``), as the
    user's own code would, with the working directory importable."""
    import importlib

    if not isinstance(name, str) or not name:
        raise ValueError(f"plugins must be module names, got {name!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is reported in one line
        raise ValueError(f"plugin {name!r} cannot be imported: {type(exc).__name__}: {exc}") from None


def _describe(exc: ValidationError, data: dict) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        if loc[:1] == ("train",) and len(loc) > 1 and loc[1] in data:  # a training key written at the top level
            loc = loc[1:]
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            nested = loc[:1] == ("train",)
            fields = TrainConfig.model_fields if nested else [*ExperimentConfig.model_fields, *TRAIN_KEYS]
            hint = closest(str(loc[-1]), list(fields))
            lines.append(f"unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"key {key!r}: {msg}")
    return "; ".join(lines)


def parse_config(data: dict, source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ActlabError(f"invalid {source}: {_describe(exc, data)}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML experiment file."""
    path = Path(path)
    if not path.is_file():
        raise ActlabError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ActlabError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ActlabError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return parse_config(data, source=str(path))
