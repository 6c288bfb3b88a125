"""Inference latency of compressed activations against ReLU, per op and per model (issue 9).

Op level: one 4M-element float32 tensor, ``torch.relu`` against a 64-knot
lookup table (``PWLActivation``, shared by the layer and per channel with 16
channels), by the kernel at every vectorised instruction set this CPU has (the
AVX2 path is forced on an AVX-512 CPU with ``_kernel.set_isa``).

Model level: ``cnn`` and ``mlp`` on MNIST-shaped inputs, ``resnet`` on
CIFAR-shaped ones, each with ReLU, with ``slaf(degree=4,basis=chebyshev)``
(learned, uncompressed) and with that slaf compressed to ``pwl(knots=64)``
(shared per layer, and per channel), at batch 1, 64 and 512. Weights are
random: latency does not depend on them.

A user's model with GELU (a plain ``nn.Sequential``, not built by actlab)
against the same model with every GELU compressed to a table: latency and
the largest change of a logit on the MNIST-10k test images.

Every ratio is measured within one run: candidates interleaved in shuffled
order, median of ``--repeats``, one thread, ``torch.inference_mode``.

    python bench/inference_latency.py [--quick] [--repeats 21]

Writes ``bench/results/inference_latency.{json,md}`` with the CPU's name and ISA.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _timing import cpu_info, interleaved, keep_freed_memory  # noqa: E402

from actlab.compress import _kernel, compress_model  # noqa: E402
from actlab.compress._fastpath import pwl_lookup  # noqa: E402
from actlab.compress.modules import PWLActivation  # noqa: E402
from actlab.data import load_dataset  # noqa: E402
from actlab.models import make_model  # noqa: E402

LEARNED = "slaf(degree=4,basis=chebyshev)"
MODELS = {"cnn": ("cnn", (1, 28, 28)), "mlp": ("mlp", (1, 28, 28)), "resnet": ("resnet", (3, 32, 32))}
BATCHES = (1, 64, 512)
GOALS = {"op_avx2": 1.3, "op_avx512": 1.1, "model": 1.05}


def isas() -> list[str]:
    """The vectorised paths to measure: the CPU's best and every narrower vector one."""
    if not _kernel.preferred():
        return []
    best = _kernel.ISAS.index(_kernel.best_isa())
    return [_kernel.ISAS[i] for i in range(best, 0, -1)]


def on(isa: str, module: nn.Module, x: torch.Tensor):
    def call():
        _kernel.set_isa(isa)
        return module(x)
    return call


def op_level(repeats: int, elements: int) -> dict:
    x = torch.randn(elements // (16 * 64 * 64), 16, 64, 64) * 3
    knots = torch.linspace(-4, 4, 64)
    shared = PWLActivation(nn.functional.gelu(knots), -4.0, 4.0).eval()
    per_channel = PWLActivation(nn.functional.gelu(knots)[None] * torch.linspace(0.5, 1.5, 16)[:, None],
                                -4.0, 4.0).eval()
    candidates, tables = {"relu": lambda: torch.relu(x)}, {}
    for isa in isas():
        for label, module in (("per layer", shared), ("16 channels", per_channel)):
            name = f"table 64, {label}, {isa}"
            candidates[name], tables[name] = on(isa, module, x), module
    with torch.inference_mode():
        med = interleaved(candidates, repeats)
        exact = {name: bool(torch.equal(candidates[name](), pwl_lookup(x, *m._tables(x))))
                 for name, m in tables.items()}
    _kernel.set_isa(None)
    return {"elements": x.numel(), "median_s": med, "over_relu": {k: v / med["relu"] for k, v in med.items()},
            "bit_identical_to_reference": exact}


def model_variants(spec: str, shape: tuple[int, ...]) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    calib = torch.randn(256, *shape)
    out = {"relu": make_model(spec, shape, 10, "relu").eval()}
    for sharing in ("layer", "channel"):
        act = LEARNED if sharing == "layer" else LEARNED.replace(")", ",sharing=channel)")
        learned = make_model(spec, shape, 10, act).eval()
        out[f"learned ({sharing})"] = learned
        out[f"compressed ({sharing})"] = compress_model(learned, "pwl", knots=64, calibration=calib)[0].eval()
    return out


def model_level(repeats: int, batches: tuple[int, ...], names: list[str]) -> tuple[list[dict], dict]:
    rows, built = [], {}
    for name in names:
        spec, shape = MODELS[name]
        variants = built[name] = model_variants(spec, shape)
        for batch in batches:
            x = torch.randn(batch, *shape)
            candidates = {"relu": lambda m=variants["relu"]: m(x)}
            for key, module in variants.items():
                if key == "relu":
                    continue
                if key.startswith("compressed"):
                    for isa in isas():
                        candidates[f"{key}, {isa}"] = on(isa, module, x)
                else:
                    candidates[key] = lambda m=module: m(x)
            with torch.inference_mode():
                med = interleaved(candidates, repeats)
            _kernel.set_isa(None)
            row = {"model": name, "batch": batch, "median_s": med}
            row["over_relu"] = {k: v / med["relu"] for k, v in med.items()}
            row["over_learned"] = {k: v / med["learned (" + k.split("(")[1].split(")")[0] + ")"]
                                   for k, v in med.items() if k.startswith("compressed")}
            rows.append(row)
            print(f"  {name} batch {batch}: " + ", ".join(f"{k} {v:.2f}x" for k, v in row["over_relu"].items()),
                  flush=True)
    return rows, built


class UserNet(nn.Sequential):
    """A model actlab did not build: two convolutions with GELU, pooled, one dense layer."""

    def __init__(self, act: type[nn.Module] = nn.GELU) -> None:
        super().__init__(nn.Conv2d(1, 16, 3), act(), nn.Conv2d(16, 16, 3), act(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(16 * 12 * 12, 10))


def gelu_model(repeats: int, batches: tuple[int, ...]) -> dict:
    data = load_dataset("mnist10k")
    torch.manual_seed(0)
    gelu = UserNet().eval()
    relu = UserNet(nn.ReLU).eval()
    relu.load_state_dict(gelu.state_dict())
    table, reports = compress_model(gelu, "pwl", knots=64, calibration=data.train.x[:2048])
    table.eval()
    test = data.test.x.reshape(-1, 1, 28, 28)
    with torch.inference_mode():
        change = float((table(test) - gelu(test)).abs().max())
        agree = float((table(test).argmax(1) == gelu(test).argmax(1)).float().mean())
    rows = []
    for batch in batches:
        x = test[:batch] if batch <= len(test) else torch.randn(batch, 1, 28, 28)
        candidates = {"relu": lambda: relu(x), "gelu": lambda: gelu(x)}
        candidates |= {f"gelu -> table, {isa}": on(isa, table, x) for isa in isas()}
        with torch.inference_mode():
            med = interleaved(candidates, repeats)
        _kernel.set_isa(None)
        rows.append({"batch": batch, "median_s": med, "over_relu": {k: v / med["relu"] for k, v in med.items()},
                     "over_gelu": {k: v / med["gelu"] for k, v in med.items()}})
    return {"max_logit_change": change, "prediction_agreement": agree,
            "fit_max_error": [r.max_error for r in reports], "latency": rows}


def markdown(res: dict) -> str:
    cpu, op = res["cpu"], res["op"]
    lines = [f"# Inference latency: compressed activations vs ReLU", "",
             f"CPU: {cpu['name']} ({cpu['isa']}; torch capability {cpu['torch_capability']}), "
             f"{res['threads']} thread, median of {res['repeats']} interleaved repeats, torch {cpu['torch']}; "
             f"kernel paths measured: {', '.join(res['kernel_isas'])} (AVX2 reads a 64-knot table by "
             f"{res['avx2_read_64_knots']}).", "",
             f"## Op level ({op['elements']:,} float32 elements)", "", "| candidate | ms | × relu | bit-identical |",
             "|---|---|---|---|"]
    for k, v in op["median_s"].items():
        ident = {True: "yes", False: "NO"}.get(op["bit_identical_to_reference"].get(k), "")
        lines.append(f"| {k} | {1e3 * v:.3f} | {op['over_relu'][k]:.2f} | {ident} |")
    lines += ["", f"Goals: ≤ {GOALS['op_avx2']}× relu on AVX2, ≤ {GOALS['op_avx512']}× on AVX-512.", "",
              "## Model level (× the same architecture with ReLU; in brackets × the uncompressed learned model)", ""]
    keys = [k for k in res["models"][0]["over_relu"] if k != "relu"] if res["models"] else []
    lines += ["| model | batch | relu ms | " + " | ".join(keys) + " |", "|---" * (3 + len(keys)) + "|"]
    for r in res["models"]:
        cells = [f"{r['over_relu'][k]:.3f}" + (f" ({r['over_learned'][k]:.2f})" if k in r["over_learned"] else "")
                 for k in keys]
        lines.append(f"| {r['model']} | {r['batch']} | {1e3 * r['median_s']['relu']:.3f} | " + " | ".join(cells) + " |")
    g = res["gelu"]
    lines += ["", f"Goal: compressed within {GOALS['model']}× of ReLU, never slower than the learned model.", "",
              "## A user's GELU model (nn.Sequential) with GELU compressed to 64-knot tables", "",
              f"Largest logit change on the 1,000 MNIST-10k test images: {g['max_logit_change']:.2e}; "
              f"same prediction on {100 * g['prediction_agreement']:.1f} %; fit max errors "
              + ", ".join(f"{e:.1e}" for e in g["fit_max_error"]) + ".", "",
              "| batch | relu ms | " + " | ".join(k for k in g["latency"][0]["over_relu"] if k != "relu") + " |",
              "|---" * (1 + len(g["latency"][0]["over_relu"])) + "|"]
    for r in g["latency"]:
        lines.append(f"| {r['batch']} | {1e3 * r['median_s']['relu']:.3f} | "
                     + " | ".join(f"{v:.2f}× relu, {r['over_gelu'][k]:.2f}× gelu" for k, v in r["over_relu"].items()
                                  if k != "relu") + " |")
    if "onnx" in res:
        lines += ["", res["onnx_markdown"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements, 5 repeats, batch 1 and 64, cnn only")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    kept = keep_freed_memory()
    repeats = args.repeats or (5 if args.quick else 21)
    batches = (1, 64) if args.quick else BATCHES
    res = {"cpu": cpu_info(), "kernel_isas": isas(), "threads": 1, "repeats": repeats, "malloc_kept": kept,
           "avx2_read_64_knots": _kernel.avx2_read(63) if "avx2" in isas() else None}
    print("op level", flush=True)
    res["op"] = op_level(repeats, 1 << 20 if args.quick else 1 << 22)
    print("model level", flush=True)
    res["models"], built = model_level(repeats, batches, ["cnn"] if args.quick else list(MODELS))
    print("GELU model", flush=True)
    res["gelu"] = gelu_model(repeats, batches)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("onnxruntime is not installed (pip install actlab[export]): no ONNX timings", flush=True)
    else:
        from _onnx_latency import onnx_latency

        print("ONNX Runtime", flush=True)
        res["onnx"], res["onnx_markdown"] = onnx_latency(built, {k: MODELS[k][1] for k in built}, repeats, batches)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference_latency.json").write_text(json.dumps(res, indent=2))
    (args.out / "inference_latency.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
