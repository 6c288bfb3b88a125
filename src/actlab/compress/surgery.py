"""Replacing costly activations in a model by compressed ones.

Which modules are activation sites: :func:`actlab.activations.sites.is_activation`.

Which sites are compressed (``select``, default :func:`is_compressible`):
every site except the piecewise-linear ones that already cost about one
operation per element (ReLU, ReLU6, LeakyReLU, PReLU, RReLU, Hardtanh,
Hardsigmoid, Identity, Threshold, Hard/Softshrink) and the compressed forms
themselves. So learnable activations (trainable parameters), expressions of
the grammar and transcendental fixed ones (SiLU, GELU, tanh, ...) are
compressed. PReLU has a trainable parameter but is listed as cheap: a table
would not make it faster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from torch import Tensor, nn

from actlab import _devices
from actlab.activations.fixed import HardSigmoid
from actlab.activations.sites import find_activations
from actlab.compress.fidelity import Change, model_changes, site_changes
from actlab.compress.fit import DEFAULT_PERCENTILES, Fit, errors, fit, fit_to_tolerance, input_range
from actlab.compress.modules import CubicActivation, PolyActivation, PWLActivation
from actlab.compress.moved import ChannelsMoved
from actlab.compress.probe import first_inputs, not_elementwise
from actlab.compress.record import record_inputs
from actlab.compress.spec import CompressSpec
from actlab.compress.tails import exact_form, tail_slopes, widen
from actlab.compress.target import Target, per_channel_width
from actlab.errors import ActlabError

CHEAP: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.Hardtanh, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.Hardsigmoid, HardSigmoid, nn.Identity,
    nn.Threshold, nn.Hardshrink, nn.Softshrink, PWLActivation, CubicActivation, PolyActivation, ChannelsMoved,
)


def is_compressible(module: nn.Module) -> bool:
    """The default ``select``: every activation except the cheap piecewise-linear ones."""
    return not isinstance(module, CHEAP)


@dataclass(frozen=True)
class SiteReport:
    """How one activation site was compressed; ``lo``/``hi`` span all its channels."""

    name: str
    original: str
    method: str
    size: int
    channels: int
    lo: float
    hi: float
    max_error: float
    weighted_error: float | None
    # |original - compressed| on the inputs the site recorded, and on them times 2 (the stress set)
    sample_max: float | None = None
    sample_mean: float | None = None
    stress_max: float | None = None
    stress_mean: float | None = None
    exact: bool = False  # the compressed form equals the original everywhere (a spline's own knots)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SkippedSite:
    """A site left as it was, and why (see :mod:`actlab.compress.probe`)."""

    name: str
    original: str
    reason: str


class CompressReport(list):
    """The :class:`SiteReport` of each compressed site; ``skipped`` lists the sites left alone;
    ``model`` the whole model's output change on the calibration data and the stress set
    (:func:`actlab.compress.fidelity.model_changes`)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.skipped: list[SkippedSite] = []
        self.model: dict[str, Change] = {}


def _batches(calibration: Tensor | Iterable) -> list[Tensor]:
    if calibration is None:
        raise ActlabError("compress_model needs calibration data: a tensor or an iterable of input batches")
    items = [calibration] if isinstance(calibration, Tensor) else list(calibration)
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in items]
    if not batches or all(isinstance(b, Tensor) and b.numel() == 0 for b in batches):
        raise ActlabError("the calibration data is empty: give at least one non-empty input batch")
    return batches


def compress_model(
    model: nn.Module,
    method: str = "pwl",
    knots: int | None = None,
    tolerance: float | None = None,
    degree: int | None = None,
    calibration: Tensor | Iterable | None = None,
    skip: Callable[[str, nn.Module], bool] | None = None,
    select: Callable[[nn.Module], bool] = is_compressible,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    least_squares: bool = False,
    max_samples: int = 20_000,
    fast: str = "auto",
    tails: str = "target",
) -> tuple[nn.Module, CompressReport]:
    """A copy of ``model`` with every selected activation replaced by a compressed form.

    ``method`` "pwl" (lookup table) and "cubic" take ``knots``, "poly" takes
    ``degree``; or give ``tolerance`` (max error over the range) to get the
    smallest size meeting it. The range of each site is the ``percentiles`` of
    its inputs on ``calibration``. ``skip(name, module)`` excludes sites.
    Sites that are not elementwise, shape-keeping and nonlinear on the
    calibration data (GLU, Softmax, a LayerScale) are left alone and listed in
    the report's ``skipped`` with the reason (:mod:`actlab.compress.probe`).
    Beyond its range a compressed form continues along the original's own tail
    lines (``tails="target"``, see :mod:`actlab.compress.tails`; a spline is
    compressed exactly by reusing its knots) or, with ``tails="edge"``, along
    its end segments. Returns the new model (the original is untouched) and a
    report per site, with the output change on the calibration data and on the
    stress set (inputs times 2), per site and for the model (``report.model``).
    Calibration runs on the model's device (batches moved there one at a time); the forms
    are fitted on the CPU and put in place on that device.
    """
    spec = CompressSpec.of(method, knots, degree, tolerance)
    if tails not in ("target", "edge"):
        raise ActlabError(f"tails must be 'target' or 'edge', got {tails!r}")
    batches = _batches(calibration)
    new = copy.deepcopy(model)
    device = _devices.of(new, default=batches[0].device)
    chosen = {n: m for n, m in find_activations(new).items() if select(m) and not (skip and skip(n, m))}
    reports = CompressReport()
    probes = first_inputs(new, chosen, batches[0])
    for name, module in list(chosen.items()):
        reason = "not called on the calibration data" if name not in probes else not_elementwise(module, probes[name])
        if reason is not None:
            reports.skipped.append(SkippedSite(name, type(module).__name__, reason))
            del chosen[name]
    samples = record_inputs(new, chosen, batches, max_samples=max_samples)
    done: dict[int, tuple[nn.Module, SiteReport]] = {}
    for name, module in chosen.items():
        if id(module) not in done:
            done[id(module)] = _compress_site(name, module, samples[name], spec,
                                              percentiles, least_squares, fast, tails == "target")
        replacement, report = done[id(module)]
        replacement.to(device)
        reports.append(SiteReport(**{**report.as_dict(), "name": name}))
        if name == "":
            new = replacement
            break
        parent, _, attr = name.rpartition(".")
        setattr(new.get_submodule(parent), attr, replacement)
    reports.model = model_changes(model, new, batches)
    return new, reports


def _compress_site(name, module, sample, spec: CompressSpec, percentiles, least_squares, fast, faithful):
    values = sample.values
    channels = per_channel_width(module, sample.width, sample.ndim)
    if channels not in (1, values.shape[0]):
        raise ActlabError(f"activation {name or 'model'} has {channels} channels but its inputs have {values.shape[0]}")
    rows = values if channels > 1 else values.reshape(1, -1)
    target = Target(module, channels, sample.ndim)
    lo, hi = input_range(rows, percentiles)
    exact = exact_form(module, spec.method, fast) if faithful else None
    if exact is not None and exact.channels == channels:
        result = Fit(exact, spec.method, exact.size, lo, hi, *errors(target, exact, lo, hi, exact.size, rows))
    else:
        exact = None
        tails = None
        if faithful:
            if spec.method != "poly":
                lo, hi = widen(lo, hi, module)
            tails = tail_slopes(target, lo, hi)
        if spec.size is not None:
            result = fit(target, lo, hi, spec.method, spec.size, rows, least_squares, fast, tails)
        else:
            result = fit_to_tolerance(target, lo, hi, spec.method, spec.tolerance, rows, least_squares, fast, tails)
    result.module.train(module.training)
    in_range, stress = site_changes(target, result.module, rows)
    dim = getattr(module, "channel_dim", 1)
    replacement = ChannelsMoved(result.module, dim) if channels > 1 and dim != 1 else result.module
    report = SiteReport(name, type(module).__name__, spec.method, result.size, channels, float(lo.min()),
                        float(hi.max()), result.max_error, result.weighted_error, in_range.max, in_range.mean,
                        stress.max, stress.mean, exact is not None)
    return replacement, report


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2e}"


def format_report(reports: list[SiteReport]) -> str:
    """The per-site report as a markdown table, then the model's output change (calibration, stress)."""
    lines = ["| site | original | method | size | channels | range | max error | weighted error "
             "| change on inputs (max) | change on inputs x2 (max) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        size = f"{r.size} (exact)" if r.exact else str(r.size)
        lines.append(f"| {r.name or '(model)'} | {r.original} | {r.method} | {size} | {r.channels} | "
                     f"[{r.lo:.3g}, {r.hi:.3g}] | {r.max_error:.2e} | {_num(r.weighted_error)} | "
                     f"{_num(r.sample_max)} | {_num(r.stress_max)} |")
    for s in getattr(reports, "skipped", []):
        lines.append(f"| {s.name or '(model)'} | {s.original} | skipped: {s.reason} | - | - | - | - | - | - | - |")
    model = getattr(reports, "model", {})
    if model:
        lines += ["", "| model output | max change | mean change | predictions kept |", "|---|---|---|---|"]
        for key, label in (("calibration", "calibration data"), ("stress", "stress set (inputs x2)")):
            if key in model:
                c = model[key]
                kept = "-" if c.agreement is None else f"{100 * c.agreement:.2f} %"
                lines.append(f"| {label} | {c.max:.3g} | {c.mean:.3g} | {kept} |")
    return "\n".join(lines)
