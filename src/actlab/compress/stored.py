"""Compressing a trained run of the run store and storing the result beside it.

The compressed model becomes a run of its own (same experiment, dataset, model
and seed; activation ``<original> -> pwl(knots=64)``), so results tables and the
report show it next to the original, with its test metrics, parameters,
FLOPs per sample and inference latency.
"""

from __future__ import annotations

from pathlib import Path

import torch

from actlab.activations.sites import activation_curves
from actlab.compress.cost import measure_latency, model_cost
from actlab.compress.surgery import compress_model
from actlab.errors import ActlabError
from actlab.experiments.runner import checkpoint_path, load_dataset_spec
from actlab.models import make_model
from actlab.store import RunStore, run_id
from actlab.train import evaluate


def find_run(store: RunStore, ref: str) -> dict:
    """The finished run whose id starts with ``ref``."""
    matches = [r for r in store.runs() if r["run_id"].startswith(ref)]
    if len(matches) != 1:
        ids = ", ".join(r["run_id"] for r in store.runs())
        what = "no run" if not matches else f"{len(matches)} runs"
        raise ActlabError(f"{what} in {store.workdir} match {ref!r}; run ids: {ids or 'none'}")
    run = matches[0]
    if run["status"] != "done":
        raise ActlabError(f"run {run['run_id']} is {run['status']}, not done; only trained runs can be compressed")
    return run


def size_label(method: str, knots: int | None, tolerance: float | None, degree: int | None) -> str:
    if tolerance is not None:
        return f"{method}(tolerance={tolerance:g})"
    return f"{method}(degree={degree})" if method == "poly" else f"{method}(knots={knots})"


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
) -> dict:
    """Compress the model of run ``ref`` and store it as a derived run; returns a summary row.

    With ``onnx``, the compressed model is also written there as ONNX of standard operators
    (:func:`actlab.compress.export_onnx`), and ONNX Runtime's logits on the test set are
    compared with PyTorch's (``onnx_max_abs_diff`` in the row)."""
    if knots is None and tolerance is None and degree is None:
        knots, degree = (None, 6) if method == "poly" else (64, None)
    store = RunStore(workdir, create=False)
    run = find_run(store, ref)
    cfg = run["config"]
    data = load_dataset_spec(cfg["dataset"])
    torch.manual_seed(cfg["seed"])
    model = make_model(cfg["model"], data.input_shape, data.num_classes, cfg["activation"])
    ckpt = checkpoint_path(store.workdir, run["run_id"])
    if not ckpt.exists():
        raise ActlabError(f"run {run['run_id']} has no checkpoint at {ckpt}")
    model.load_state_dict(torch.load(ckpt, weights_only=True))
    model.eval()
    compressed, reports = compress_model(model, method=method, knots=knots, tolerance=tolerance, degree=degree,
                                         calibration=data.train.x[:calibration_size])
    compressed.eval()
    label = size_label(method, knots, tolerance, degree)
    derived = cfg | {"activation": f"{cfg['activation']} -> {label}", "compressed_from": run["run_id"]}
    rid = run_id(derived)
    before = evaluate(model, data.test, data.num_classes)
    after = evaluate(compressed, data.test, data.num_classes)
    info = {"dataset_description": run["info"].get("dataset_description", cfg["dataset"]),
            "compressed_from": run["run_id"], "sites": [r.as_dict() for r in reports],
            "original_test_acc": before["acc"], "original_cost": inference_cost(model, data.test.x, latency)}
    info |= {"cost": inference_cost(compressed, data.test.x, latency), "params": info.get("params")}
    info["params"] = info["cost"]["params"]
    store.start_run(rid, run["experiment"], derived, info)
    store.put_artifact(rid, "curves_before", activation_curves(model))
    store.put_artifact(rid, "curves_after", activation_curves(compressed))
    store.finish_run(rid, "done", test=after, info=info)
    store.close()
    exported = _export(compressed, onnx, data.test.x) if onnx is not None else {}
    return exported | {"run_id": rid, "original": run["run_id"], "activation": derived["activation"],
            "test_acc": after["acc"], "original_test_acc": before["acc"],
            "delta_pp": 100 * (after["acc"] - before["acc"]), "sites": reports} | {
        f"original_{k}": v for k, v in info["original_cost"].items()} | info["cost"]


def _export(model: torch.nn.Module, path: str | Path, x: torch.Tensor) -> dict:
    from actlab.compress.export import export_onnx, onnx_session

    path = export_onnx(model, path, x[:1])
    with torch.inference_mode():
        expect = model(x).numpy()
    got = onnx_session(path).run(None, {"input": x.numpy()})[0]
    return {"onnx": str(path), "onnx_max_abs_diff": float(abs(got - expect).max())}
