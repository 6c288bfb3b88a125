"""The ONNX Runtime part of bench/inference_latency.py: exported compressed models against exported ReLU models."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from _timing import interleaved

from actlab.compress import export_onnx, onnx_session


def onnx_latency(variants: dict[str, dict[str, torch.nn.Module]], shapes: dict[str, tuple[int, ...]],
                 repeats: int, batches: tuple[int, ...]) -> tuple[list[dict], str]:
    """Per model: ReLU and compressed (per layer) exported to ONNX, timed in ORT at one thread,
    interleaved; plus the largest difference between ORT's and PyTorch's logits."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, models in variants.items():
            shape = shapes[name]
            chosen = {k: models[k] for k in ("relu", "compressed (layer)", "compressed (channel)")}
            sessions, diffs = {}, {}
            for key, model in chosen.items():
                path = export_onnx(model, Path(tmp) / f"{name}_{key.replace(' ', '_')}.onnx", torch.randn(1, *shape))
                sessions[key] = onnx_session(path, threads=1)
                x = torch.randn(64, *shape)
                with torch.inference_mode():
                    ref = model(x).numpy()
                diffs[key] = float(np.abs(sessions[key].run(None, {"input": x.numpy()})[0] - ref).max())
            for batch in batches:
                feed = {"input": torch.randn(batch, *shape).numpy()}
                med = interleaved({k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}, repeats)
                rows.append({"model": name, "batch": batch, "median_s": med, "max_abs_diff_vs_torch": diffs,
                             "over_relu": {k: v / med["relu"] for k, v in med.items()}})
                print(f"  onnx {name} batch {batch}: " + ", ".join(f"{k} {v:.2f}x" for k, v in
                                                                   rows[-1]["over_relu"].items()), flush=True)
    lines = ["## ONNX Runtime (1 thread): exported models, × the exported ReLU model", "",
             "| model | batch | relu ms | compressed (layer) | compressed (channel) | max abs diff ORT vs torch |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        o, d = r["over_relu"], r["max_abs_diff_vs_torch"]
        lines.append(f"| {r['model']} | {r['batch']} | {1e3 * r['median_s']['relu']:.3f} | "
                     f"{o['compressed (layer)']:.2f} | {o['compressed (channel)']:.2f} | "
                     f"{max(d.values()):.1e} |")
    return rows, "\n".join(lines)
