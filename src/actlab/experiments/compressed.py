"""Compressing a trained run of the run store and storing the result beside it.

The compressed model becomes a run of its own (same experiment, dataset, model
and seed; activation ``<original> -> pwl(knots=64)``), so results tables and the
report show it next to the original, with its test metrics, parameters,
FLOPs per sample and inference latency.
"""

from __future__ import annotations

from pathlib import Path

import torch

from actlab import _devices
from actlab.activations.sites import activation_curves
from actlab.compress import CompressSpec, compress_model, export_onnx, measure_latency, model_cost, onnx_session
from actlab.experiments.runs import load_run
from actlab.store import RunStore, run_id
from actlab.train import evaluate


def inference_cost(model: torch.nn.Module, sample: torch.Tensor, latency: bool = True) -> dict:
    """FLOPs and parameters per sample and (optionally) latency at batch 1 and 256."""
    cost = model_cost(model, sample[:8])
    out = {"flops": cost.flops, "activation_flops": cost.activation_flops, "params": cost.params,
           "stored": cost.stored}
    if latency:
        times = measure_latency(model, tuple(sample.shape[1:]), (1, 256), repeats=15)
        out |= {"latency_b1_ms": 1e3 * times[1], "latency_b256_ms": 1e3 * times[256]}
    return out


def compress_run(
    workdir: str | Path,
    ref: str,
    method: str = "pwl",
    knots: int | None = None,
    tolerance: float | None = None,
    degree: int | None = None,
    calibration_size: int = 2048,
    latency: bool = True,
    onnx: str | Path | None = None,
    tails: str = "target",
    device: str | None = None,
) -> dict:
    """Compress the model of run ``ref`` and store it as a derived run; returns a summary row.

    Without a size or tolerance, the default size of ``method`` (:class:`CompressSpec`). With
    ``onnx``, the compressed model is also written there as ONNX of standard operators
    (:func:`actlab.compress.export_onnx`), and ONNX Runtime's logits on the test set are
    compared with PyTorch's (``onnx_max_abs_diff`` in the row). ``device`` (e.g. ``"cuda"``) is
    where the model is calibrated, evaluated and timed (the latencies are that device's)."""
    where = _devices.resolve(device)  # a typo or a machine without CUDA: one line before any work
    spec = CompressSpec.of(method, knots, degree, tolerance, default=True)
    store = RunStore(workdir, create=False)
    trained = load_run(store, ref)
    run, data, model = trained.run, trained.data, trained.model.to(where or "cpu")
    cfg = run["config"]
    compressed, reports = compress_model(model, **spec.kwargs(), calibration=data.train.x[:calibration_size],
                                         tails=tails)
    compressed.eval()
    derived = cfg | {"activation": f"{cfg['activation']} -> {spec.label()}", "compressed_from": run["run_id"]}
    rid = run_id(derived)
    before = evaluate(model, data.test, data.num_classes)
    after = evaluate(compressed, data.test, data.num_classes)
    info = {"dataset_description": run["info"].get("dataset_description", cfg["dataset"]),
            "compressed_from": run["run_id"], "sites": [r.as_dict() for r in reports],
            "fidelity": {k: c.as_dict() for k, c in reports.model.items()},
            "original_test_acc": before["acc"], "original_cost": inference_cost(model, data.test.x, latency)}
    info["cost"] = inference_cost(compressed, data.test.x, latency)
    info["params"] = info["cost"]["params"]
    store.start_run(rid, run["experiment"], derived, info, replace=True)  # compressing again replaces it
    store.put_artifact(rid, "curves_before", activation_curves(model))
    store.put_artifact(rid, "curves_after", activation_curves(compressed))
    store.finish_run(rid, "done", test=after, info=info)
    store.close()
    exported = _export(compressed.cpu(), onnx, data.test.x) if onnx is not None else {}  # ONNX Runtime on the CPU
    return exported | {"run_id": rid, "original": run["run_id"], "activation": derived["activation"],
                       "test_acc": after["acc"], "original_test_acc": before["acc"],
                       "delta_pp": 100 * (after["acc"] - before["acc"]), "sites": reports} | {
        f"original_{k}": v for k, v in info["original_cost"].items()} | info["cost"]


def _export(model: torch.nn.Module, path: str | Path, x: torch.Tensor) -> dict:
    path = export_onnx(model, path, x[:1])
    with torch.inference_mode():
        expect = model(x).numpy()
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    return {"onnx": str(path), "onnx_max_abs_diff": float(abs(got - expect).max())}
