"""Saving and loading converted and compressed models as plain data (``torch.load(weights_only=True)``).

A pickled ``nn.Module`` carries references to code, which ``weights_only=True``
rightly refuses, and a user's model class cannot be rebuilt from a file
anyway. So a file holds data only: how the model was converted
(:func:`actlab.convert`'s arguments and example shapes), the constructor
arguments of each compressed activation by path, and the state_dict.
:func:`load` takes a fresh instance of the original architecture, replays the
conversion, puts the compressed forms in place and loads the weights.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from actlab import _devices
from actlab.activations.convert import convert
from actlab.compress.modules import CubicActivation, PolyActivation, PWLActivation
from actlab.compress.moved import ChannelsMoved
from actlab.compress.snap import SnappedActivation
from actlab.errors import ActlabError

FORMAT = "actlab-model/1"


def _args(module: nn.Module) -> dict | None:
    """What rebuilds ``module`` before its buffers are loaded; None for a module that is not compressed."""
    if isinstance(module, PWLActivation):
        return {"class": "pwl", "shape": list(module.values.shape), "fast": module.fast}
    if isinstance(module, CubicActivation):
        return {"class": "cubic", "shape": list(module.coef.shape)}
    if isinstance(module, PolyActivation):
        return {"class": "poly", "shape": list(module.coeffs.shape)}
    if isinstance(module, ChannelsMoved):  # its inner module is listed after it
        return {"class": "moved", "shape": [], "dim": module.dim}
    if isinstance(module, SnappedActivation):
        return {"class": "snapped", "shape": [module.a.numel()], "expression": module.expression}
    return None


def _rebuild(args: dict) -> nn.Module:
    kind, shape = args["class"], args["shape"]
    if kind == "moved":
        return ChannelsMoved(nn.Identity(), args["dim"])
    lo, hi = torch.zeros(shape[0]), torch.ones(shape[0])  # placeholders, overwritten by the state_dict
    if kind == "pwl":
        return PWLActivation(torch.zeros(shape), lo, hi, args["fast"])
    if kind == "cubic":
        return CubicActivation(torch.zeros(shape), lo, hi)
    if kind == "poly":
        return PolyActivation(torch.zeros(shape), lo, hi)
    if kind == "snapped":
        a = torch.ones(shape)
        return SnappedActivation(args["expression"], a, a, a, a)
    raise ActlabError(f"unknown compressed form {kind!r} in the file; was it written by a newer actlab?")


def _type(name: str) -> type:
    module, _, qualname = name.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def save(model: nn.Module, path: str | Path) -> Path:
    """Write ``model`` (converted and/or compressed by actlab) as data that :func:`load` rebuilds."""
    info = getattr(model, "_actlab_convert", None)
    if info is not None and not isinstance(info["spec"], str):
        raise ActlabError("only a model converted with a spec string can be saved; a callable spec is code")
    modules = {name: args for name, m in model.named_modules() if (args := _args(m)) is not None}
    payload = {"format": FORMAT, "convert": info, "modules": modules, "state_dict": model.state_dict()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load(path: str | Path, model: nn.Module | Callable[[], nn.Module],
         device: str | torch.device | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save` on ``model``, a fresh instance of the original architecture.

    The file is read with ``torch.load(weights_only=True)``: it holds no code. Its tensors are read
    onto the CPU, wherever they were saved from (a model saved on CUDA loads without one); the
    model comes back on ``device``, by default the device of the ``model`` given.
    """
    where = _devices.resolve(device)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ActlabError(f"no model file at {path}") from None
    except Exception as exc:  # noqa: BLE001  (pickle, zip and weights-only errors alike)
        raise ActlabError(f"{path} is not a model file actlab can read: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ActlabError(f"{path} was not written by actlab.save")
    if not isinstance(model, nn.Module):
        model = model()
    if where is not None:
        model.to(where)
    where = _devices.of(model)
    info = payload["convert"]
    if info is not None:
        example = tuple(torch.zeros(shape, dtype=getattr(torch, dtype))
                        for shape, dtype in zip(info["example_shapes"], info["example_dtypes"]))
        model, _ = convert(model, info["spec"], example, types=tuple(_type(t) for t in info["types"]), channels=info["channels"],
                           share_reused=info["share_reused"])
    for name, args in payload["modules"].items():
        module = _rebuild(args)
        if name == "":
            model = module
            continue
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, module)
    model.to(where)  # the compressed forms, rebuilt on the CPU
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ActlabError(f"{path} does not fit this model ({first}); pass the architecture it was saved from") \
            from None
    return model

