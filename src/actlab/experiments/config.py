"""Experiment grids from TOML files, validated with pydantic.

An unknown key or a wrong type is rejected with the key named; names of
datasets, models and activations are checked before any training starts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actlab._registry import closest
from actlab.errors import ActlabError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _checked(fn, *args, item: int | None = None):
    """Call ``fn``; turn an ActlabError into the ValueError pydantic reports with its key."""
    try:
        return fn(*args)
    except ActlabError as exc:
        where = f"item {item}: " if item is not None else ""
        raise ValueError(where + str(exc).splitlines()[0]) from None


def _named_specs(specs: list[str], registry, what: str) -> list[str]:
    """Check that every ``name(key=value,...)`` spec names an entry of ``registry``; canonical specs."""
    from actlab.activations import canonical
    from actlab.activations.spec import name_and_options

    for i, spec in enumerate(specs):
        name, _ = _checked(name_and_options, spec, what, item=i)
        _checked(registry.get, name, item=i)
    return [canonical(s) for s in specs]


class ExperimentConfig(BaseModel):
    """A grid: datasets x models x activations x seeds, trained alike."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    datasets: list[str] = Field(..., min_length=1)
    models: list[str] = Field(..., min_length=1)
    activations: list[str] = Field(..., min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    epochs: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(None, gt=0)
    lr_schedule: str = "constant"
    data_dir: str | None = None

    @field_validator("activations")
    @classmethod
    def _activations_exist(cls, specs: list[str]) -> list[str]:
        from actlab.activations import canonical, make_activation
        from actlab.activations.registry import Site

        for i, spec in enumerate(specs):
            _checked(make_activation, spec, Site(4, "conv"), item=i)
        return [canonical(s) for s in specs]

    @field_validator("models")
    @classmethod
    def _models_exist(cls, specs: list[str]) -> list[str]:
        from actlab.models import MODELS

        return _named_specs(specs, MODELS, "model")

    @field_validator("datasets")
    @classmethod
    def _datasets_exist(cls, specs: list[str]) -> list[str]:
        from actlab.data import DATASETS

        return _named_specs(specs, DATASETS, "dataset")

    @field_validator("lr_schedule")
    @classmethod
    def _schedule_exists(cls, name: str) -> str:
        from actlab.train import LR_SCHEDULES

        _checked(LR_SCHEDULES.get, name)
        return name


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = closest(str(err["loc"][-1]), list(ExperimentConfig.model_fields))
            lines.append(f"unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"key {key!r}: {msg}")
    return "; ".join(lines)


def parse_config(data: dict, source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ActlabError(f"invalid {source}: {_describe(exc)}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML experiment file."""
    path = Path(path)
    if not path.is_file():
        raise ActlabError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ActlabError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, source=str(path))
