"""Putting actlab activations into a model someone else wrote: :func:`convert`.

Every activation of the chosen types — modules (``nn.ReLU``) and functional
calls (``F.relu(x)``, ``x.relu()``) — is replaced by a fresh
``make_activation(spec, Site(width, kind))``. Widths come from a dry run on
``example_input``, never from guessing.

Which dimension holds the channels (``channels=``): actlab's families keep
per-unit parameters along dim 1 (:mod:`.learnable._sharing`), which is right
for 2-D (N, F) and conv-like (N, C, ...) inputs. A 3-D input is taken as a
channels-last token tensor (N, T, D) of a transformer by default
(``channels="auto"``), so per-channel sharing gets D units: actlab's families
are made with ``channel_dim=-1`` (a free reshape to (N*T, D) inside), other
per-unit modules are wrapped in :class:`ChannelsLast`, which moves D to dim 1
and back. Pass
``channels="first"`` for Conv1d models, ``"last"`` to force it. With the
default ``sharing=layer`` the choice changes nothing.

How the model is rewritten: if it has no functional calls and no module used
at several sites, modules are swapped in a copy (the model keeps its class).
Otherwise the model is traced with ``torch.fx`` and the result is a
``GraphModule`` with one activation per site (``share_reused=True`` keeps one
shared activation per reused module instead).
"""

from __future__ import annotations

import copy
import traceback
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, fx, nn

from actlab import _devices
from actlab.activations._convert_graph import FUNCTIONS, METHODS, Tracer, convert_graph, first_line, functional_type
from actlab.activations.registry import make_activation
from actlab.activations.sites import Site
from actlab.errors import ActlabError
from actlab.spec import Call, Name, parse

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.Mish,
)
CHANNELS = ("auto", "first", "last")


class ChannelsLast(nn.Module):
    """Applies ``act`` with the last dim moved to dim 1, where actlab keeps per-unit parameters."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x.movedim(-1, 1)).movedim(1, -1)


@dataclass(frozen=True)
class ConvertedSite:
    """One replaced activation: where, what it was, its input shape and what replaced it."""

    name: str
    original: str
    shape: tuple[int, ...]
    width: int
    family: str
    parameters: int

    def as_dict(self) -> dict:
        return asdict(self)


def _with_sharing(spec: object, sharing: str | None) -> object:
    if sharing is None:
        return spec
    if not isinstance(spec, str):
        raise ActlabError("sharing= needs a spec string such as 'spline(knots=16)'")
    node = parse(spec)
    if not isinstance(node, (Name, Call)) or (isinstance(node, Call) and node.args):
        raise ActlabError(f"sharing= applies to a family spec, not to the expression {spec}")
    kwargs = [f"{k}={v}" for k, v in (node.kwargs if isinstance(node, Call) else ()) if k != "sharing"]
    return f"{node.name}({','.join([*kwargs, f'sharing={sharing}'])})"


def _channels_last(shape: tuple[int, ...], channels: str) -> bool:
    return len(shape) >= 3 and (channels == "last" or (channels == "auto" and len(shape) == 3))


def _width(shape: tuple[int, ...], channels: str) -> int:
    if len(shape) < 2:
        return 1
    return int(shape[-1] if _channels_last(shape, channels) else shape[1])


def _build(spec: object, shape: tuple[int, ...], channels: str) -> tuple[nn.Module, int]:
    last, width = _channels_last(shape, channels), _width(shape, channels)
    kind = "conv" if len(shape) >= 3 and not last else "dense"
    act = make_activation(spec, Site(width, kind))
    if last and getattr(act, "n_units", 1) > 1 and hasattr(act, "channel_dim"):
        act.channel_dim = -1  # actlab's families take channels last themselves (a reshape, no copy)
    elif last and getattr(act, "n_units", 1) > 1:
        act = ChannelsLast(act)
        act.is_activation = False  # the site is the inner module, which sees channels on dim 1
    return act, width


def _site(name: str, original: str, shape: tuple[int, ...], width: int, act: nn.Module) -> ConvertedSite:
    inner = act.act if isinstance(act, ChannelsLast) else act
    family = getattr(inner, "family", type(inner).__name__)
    n_params = sum(p.numel() for p in act.parameters())
    return ConvertedSite(name, original, tuple(shape), width, str(family), n_params)


def convert(
    model: nn.Module,
    spec: object,
    example_input: Tensor | tuple,
    *,
    sharing: str | None = None,
    types: tuple[type[nn.Module], ...] = DEFAULT_TYPES,
    channels: str = "auto",
    share_reused: bool = False,
) -> tuple[nn.Module, list[ConvertedSite]]:
    """A copy of ``model`` with every activation of ``types`` replaced by ``make_activation(spec, site)``.

    ``sharing`` (layer, channel, neuron or group, whose ``groups=G`` the spec
    names) overrides the family's parameter sharing; ``channels`` picks the
    channel dim (module docstring). Returns the new model (in the original's
    train/eval mode, on its device) and a table of the sites.
    """
    if channels not in CHANNELS:
        raise ActlabError(f"channels must be one of {', '.join(CHANNELS)}, got {channels!r}")
    spec = _with_sharing(spec, sharing)
    # a bad spec fails before the dry run; a spec string without a site, whose width
    # group sharing's G would have to divide
    make_activation(spec, None if isinstance(spec, str) else Site())
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    if not args or not all(isinstance(a, Tensor) for a in args):
        raise ActlabError("example_input must be a tensor or a tuple of tensors, the model's inputs")
    types = tuple(types)
    # the dry run and the new activations on the model's device (CUDA, or meta for shapes only)
    device = _devices.of(model, default=args[0].device)
    new, table = _convert(model, spec, tuple(a.to(device) for a in args), types, channels, share_reused)
    for site in table:
        new.get_submodule(site.name).to(device)
    # What actlab.save stores to replay this call on a fresh model (plain data: see compress.saving).
    new._actlab_convert = {
        "spec": spec, "types": [f"{t.__module__}:{t.__qualname__}" for t in types],
        "channels": channels, "share_reused": share_reused, "example_shapes": [list(a.shape) for a in args],
        "example_dtypes": [str(a.dtype).removeprefix("torch.") for a in args]}
    if isinstance(new, fx.GraphModule):  # GraphModule's deepcopy keeps only the attributes listed here
        new.meta.setdefault("_user_preserved_attributes", {})["_actlab_convert"] = new._actlab_convert
    return new, table


def _convert(model, spec, args, types, channels, share_reused):
    try:
        graph = Tracer(types).trace(model)
    except Exception as exc:  # noqa: BLE001  (any tracing failure means: use hooks)
        return _convert_modules(model, spec, args, types, channels, share_reused, first_line(exc))
    gm = fx.GraphModule(model, graph, type(model).__name__)
    uses: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module" and isinstance(gm.get_submodule(node.target), types):
            uses[node.target] = uses.get(node.target, 0) + 1
    functional = [n for n in graph.nodes if functional_type(n, types) is not None]
    if not functional and (share_reused or all(k == 1 for k in uses.values())):
        return _convert_modules(model, spec, args, types, channels, share_reused, None)
    def make(name: str, original: str, shape: tuple[int, ...]) -> tuple[nn.Module, ConvertedSite]:
        act, width = _build(spec, shape, channels)
        return act, _site(name, original, shape, width, act)

    return convert_graph(gm, args, types, share_reused, model.training, make)


def _run(model: nn.Module, args: tuple) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args)
    except ActlabError:
        raise
    except Exception as exc:  # noqa: BLE001  (the user's model failing on the user's input)
        raise ActlabError(f"the model failed on example_input: {first_line(exc)}") from None
    finally:
        model.train(was_training)


class _FunctionalSpy(torch.overrides.TorchFunctionMode):
    """Finds functional activation calls during a dry run, with the user's line that made them."""

    def __init__(self, types: tuple) -> None:
        super().__init__()
        self.types = types
        self.found: list[str] = []
        self.inside = 0  # > 0 while an activation module runs: its own F.relu is not a functional site

    def __torch_function__(self, func, types, args=(), kwargs=None):
        cls = FUNCTIONS.get(func) or METHODS.get(getattr(func, "__name__", ""))
        if cls is not None and issubclass(cls, self.types) and not self.found and not self.inside:
            frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename]
            where = frames[-1] if frames else None
            self.found.append(f"{where.filename}:{where.lineno}: {where.line}" if where else func.__name__)
        return func(*args, **(kwargs or {}))


def _convert_modules(model, spec, args, types, channels, share_reused, trace_error):
    new = copy.deepcopy(model)
    targets: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module._modules.items():
            if child is None:
                continue
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, types):
                targets.setdefault(id(child), []).append(path)
                modules[id(child)] = child
            else:
                visit(path, child)

    visit("", new)
    shapes: dict[int, list[tuple[int, ...]]] = {key: [] for key in modules}
    spy = _FunctionalSpy(types)

    def enter(key: int, x: Tensor) -> None:
        shapes[key].append(tuple(x.shape))
        spy.inside += 1

    def leave(*_: object) -> None:
        spy.inside -= 1

    handles = [h for key, m in modules.items() for h in (
        m.register_forward_pre_hook(lambda mod, inp, key=key: enter(key, inp[0])),
        m.register_forward_hook(leave))]
    try:
        if trace_error is None:
            _run(new, args)
        else:
            with spy:
                _run(new, args)
    finally:
        for h in handles:
            h.remove()
    if spy.found:
        raise ActlabError(f"the model calls an activation function outside a module at {spy.found[0]} "
                          f"and does not trace with torch.fx ({trace_error}); use an nn.Module for it")
    table = []
    for key, paths in targets.items():
        calls = shapes[key]
        if not calls:
            continue  # never called on example_input: left alone
        if len(calls) > 1 and not share_reused:
            raise ActlabError(f"{paths[0]} is used at {len(calls)} sites and the model does not trace with "
                              f"torch.fx ({trace_error}); pass share_reused=True for one shared activation")
        if len({_width(s, channels) for s in calls}) > 1:
            raise ActlabError(f"{paths[0]} is used at sites of different widths {calls}; it cannot be shared")
        act, width = _build(spec, calls[0], channels)
        for path in paths:
            parent, _, attr = path.rpartition(".")
            setattr(new.get_submodule(parent), attr, act)
        table.append(_site(paths[0], type(modules[key]).__name__, calls[0], width, act))
    new.train(model.training)
    return new, table


