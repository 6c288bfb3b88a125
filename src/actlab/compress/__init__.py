"""Compressing activations: lookup tables, splines, polynomials and closed forms.

A learned activation (a subnetwork per element, a rational, a SLAF, an
expression) is replaced at inference by a form about as cheap as ReLU,
fitted on the range its layer actually sees (:func:`compress_model`), or by
the closest closed form of the grammar (:func:`snap_module`); compressed
models export to ONNX of standard operators (:func:`export_onnx`).
"""

from actlab.activations.flops import flops_per_element
from actlab.activations.sites import find_activations, is_activation
from actlab.compress.cost import measure_latency, model_cost
from actlab.compress.export import export_onnx, onnx_session
from actlab.compress.fit import Fit, fit, fit_to_tolerance, input_range
from actlab.compress.modules import CubicActivation, PolyActivation, PWLActivation
from actlab.compress.record import InputSample, record_inputs
from actlab.compress.spec import CompressSpec
from actlab.compress.snap import Snap, SnappedActivation, snap, snap_module
from actlab.compress.surgery import (
    CompressReport, SiteReport, SkippedSite, compress_model, format_report, is_compressible,
)
from actlab.compress.target import Target

__all__ = [
    "CompressReport",
    "CompressSpec",
    "CubicActivation",
    "Fit",
    "InputSample",
    "PWLActivation",
    "PolyActivation",
    "SiteReport",
    "SkippedSite",
    "Snap",
    "SnappedActivation",
    "Target",
    "compress_model",
    "export_onnx",
    "find_activations",
    "fit",
    "fit_to_tolerance",
    "flops_per_element",
    "format_report",
    "input_range",
    "is_activation",
    "is_compressible",
    "measure_latency",
    "model_cost",
    "onnx_session",
    "record_inputs",
    "snap",
    "snap_module",
]
