"""Speed and peak memory of the learnable activations against ReLU on a CUDA GPU (issue 23).

Per op: forward + backward of each activation on one tensor (default
64x16x28x28, requires_grad) against ``torch.relu``. Per model: one training
step (SGD, cross-entropy; the gradients are set to None after the step) of

- ViT-Tiny: actlab's ``vit(patch=16,dim=192,depth=12,heads=3,mlp_ratio=4)`` on
  224x224x3, 1000 classes, batch 64; DeiT-Tiny's sizes, but the logits come
  from the mean of the 196 patch tokens (actlab's vit has no class token);
- ResNet-18 (CIFAR variant): actlab's ``resnet(width=64,blocks=2,stages=4)`` on
  32x32x3, 10 classes, batch 128: a 3x3 stem without max-pool, four stages of
  64-512 channels, 17 activation sites, 11.2M parameters;

each with the activation at every site against the model with ReLU. Each
family runs shared by the layer and per channel (ViT: per hidden feature); a
64-knot lookup table of ``compress`` (``PWLActivation`` holding GELU's values
on [-4, 4]) stands for a compressed activation (on CUDA its Triton lookup, in
training too; on the CPU its differentiable formula). Every case runs in
float32 and under bf16 autocast (per op: a bfloat16 input under autocast, what
a site receives in an autocast model). Goals, printed beside the figures: per
op <= 1.5x ReLU's time, model step <= 1.1x, peak memory <= 1.05x.

Timings: CUDA events around blocks of calls lasting about 20 ms; every repeat
runs every candidate once, in a shuffled order (interleaved), and the figure is
the median of the repeats. Peak memory: ``torch.cuda.max_memory_allocated``
during one call or step less the memory allocated before it (the weights and
optimiser state of every candidate model, which sit on the GPU together so
that their steps can be interleaved). A candidate that fails (out of memory,
a kernel that does not compile) is listed with its error; the rest still run.

    python bench/gpu_speed.py [--repeats 15] [--parts ops vit resnet]
    python bench/gpu_speed.py --device cpu --smoke   # the whole script on tiny sizes, for the tests

Writes ``bench/results/gpu_speed.{json,md}`` (``--smoke``: ``gpu_speed_smoke``) with the device's name.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _gpu_timing import interleaved, peak_bytes, working  # noqa: E402
from _timing import cpu_info  # noqa: E402

from actlab import _cpp  # noqa: E402
from actlab.activations import Site, make_activation  # noqa: E402
from actlab.activations.learnable import _kernels  # noqa: E402
from actlab.compress.modules import PWLActivation  # noqa: E402
from actlab.models import count_parameters, make_model  # noqa: E402

PWL = "pwl table 64"
FAMILIES = {
    "slaf deg4": "slaf(degree=4)",
    "slaf chebyshev 8": "slaf(degree=8,basis=chebyshev)",
    "slaf fourier 4": "slaf(degree=4,basis=fourier)",
    "slaf rbf 4": "slaf(degree=4,basis=rbf)",
    "spline 32": "spline(knots=32)",
    "spline cubic 32": "spline(knots=32,order=3)",
    "rational 5/4": "rational(num=5,den=4)",
    "subnet H8": "subnet(hidden=8)",
    PWL: "PWLActivation(gelu on [-4, 4], 64 knots)",
}
SHARINGS = ("layer", "channel")
GOALS = {"op": 1.5, "step": 1.1, "memory": 1.05}
MODES = ("float32", "bf16")
# the op's shape, and per model (spec, input shape, classes, batch); --smoke: the same code on tiny sizes
FULL = {"shape": [64, 16, 28, 28],
        "vit": ("vit(patch=16,dim=192,depth=12,heads=3,mlp_ratio=4)", (3, 224, 224), 1000, 64),
        "resnet": ("resnet(width=64,blocks=2,stages=4)", (3, 32, 32), 10, 128)}
SMOKE = {"shape": [2, 4, 6, 6], "vit": ("vit(patch=4,dim=16,depth=1,heads=2)", (3, 16, 16), 10, 2),
         "resnet": ("resnet(width=4,blocks=1)", (3, 16, 16), 10, 2)}
NO_CUDA = "gpu_speed needs a CUDA device; this torch sees none"


def candidates() -> list[str]:
    return ["relu"] + [f"{name} / {sharing}" for name in FAMILIES for sharing in SHARINGS]


def factory(candidate: str) -> Callable[[Site], nn.Module]:
    """``site -> activation module`` for a candidate name of :func:`candidates`."""
    if candidate == "relu":
        return lambda site: nn.ReLU()
    name, sharing = candidate.split(" / ")
    if name == PWL:
        table = nn.functional.gelu(torch.linspace(-4.0, 4.0, 64))
        return lambda site: PWLActivation(table.repeat(site.num_features if sharing == "channel" else 1, 1), -4.0, 4.0)
    spec = f"{FAMILIES[name][:-1]},sharing={sharing})"
    return lambda site: make_activation(spec, site)


def kernels(device: torch.device) -> str:
    """What the learnable families run on ``device``."""
    if device.type != "cuda":
        return "fused C++ kernels (CPU)" if _cpp.kernels_enabled() else "PyTorch reference paths (ACTLAB_KERNELS=0)"
    if _kernels.TRITON.load():
        return "Triton kernels"
    return f"PyTorch reference paths (the Triton kernels did not load: {_kernels.TRITON.error})"


def autocast(mode: str, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16" else nullcontext()


def measure(fns: dict, args, device: torch.device, errors: dict, where: str) -> dict:
    fns = working(fns, device, errors, where)
    seconds = interleaved(fns, args.repeats, args.seconds, device)
    return {"ms": {k: v * 1e3 for k, v in seconds.items()},
            "peak_bytes": {name: peak_bytes(fn, device) for name, fn in fns.items()}}


def bench_ops(shape: list[int], args, device: torch.device, errors: dict) -> dict:
    torch.manual_seed(0)
    out = {}
    for mode in MODES:
        dtype = torch.bfloat16 if mode == "bf16" else torch.float32
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
        g = torch.randn(shape, device=device, dtype=dtype)
        mods = {name: torch.relu if name == "relu" else factory(name)(Site(shape[1], "conv")).to(device)
                for name in candidates()}

        def fwd_bwd(act, x=x, g=g, mode=mode):
            x.grad = None
            with autocast(mode, device):
                y = act(x)
            y.backward(g)

        fns = {name: (lambda act=act: fwd_bwd(act)) for name, act in mods.items()}
        out[mode] = measure(fns, args, device, errors, f"ops {mode}")
    return out


def bench_model(config: tuple, args, device: torch.device, errors: dict, where: str) -> dict:
    spec, shape, classes, batch = config
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    out: dict = {"spec": spec, "input": list(shape), "batch": batch}
    models, opts = {}, {}
    for name in candidates():
        torch.manual_seed(0)  # the same weights for every candidate
        models[name] = make_model(spec, shape, classes, factory(name)).to(device)
        opts[name] = torch.optim.SGD(models[name].parameters(), lr=1e-3)
    out["parameters_relu"] = count_parameters(models["relu"])
    for mode in MODES:
        def step(name: str, mode=mode) -> None:
            with autocast(mode, device):
                loss = nn.functional.cross_entropy(models[name](x), y)
            loss.backward()
            opts[name].step()
            opts[name].zero_grad()

        fns = {name: (lambda name=name: step(name)) for name in models}
        out[mode] = measure(fns, args, device, errors, f"{where} {mode}")
    return out


def _ratio(d: dict, name: str) -> str:
    value, relu = d.get(name), d.get("relu")
    return f"{value / relu:.2f}" if value is not None and relu else "-"


def _cells(part: dict, name: str) -> list[str]:
    cells = []
    for mode in MODES:
        ms, peak = part[mode]["ms"], part[mode]["peak_bytes"]
        mb = f"{peak[name] / 2**20:.1f}" if peak.get(name) is not None else "-"
        cells += [f"{ms[name]:.3f}" if name in ms else "failed", _ratio(ms, name), mb, _ratio(peak, name)]
    return cells


def markdown(res: dict) -> str:
    lines = [f"# GPU speed and peak memory against ReLU ({res['device']})", "",
             f"Device: {res['device']}; torch {res['torch']}; learnable families on {res['kernels']}; "
             f"{res['repeats']} interleaved repeats (medians) of blocks of about {res['seconds'] * 1e3:.0f} ms; "
             f"TF32 matmuls {res['tf32_matmul']}, cudnn.benchmark {res['cudnn_benchmark']}."
             + (" **Smoke run: tiny sizes, not figures.**" if res["smoke"] else ""),
             "Peak: max_memory_allocated during the call or step less what was allocated before it.", ""]
    sections = [("ops", f"Per op, forward + backward on {res['shape']}", GOALS["op"])] if "ops" in res else []
    sections += [(key, f"{key} training step: {res[key]['spec']} on {res[key]['input']}, batch {res[key]['batch']}, "
                  f"{res[key]['parameters_relu']:,} parameters with ReLU", GOALS["step"])
                 for key in ("vit", "resnet") if key in res]
    for key, title, goal in sections:
        lines += [f"## {title}", "", "| activation | " + " | ".join(
            f"{mode} ms | x relu (goal <= {goal}) | {mode} peak MB | x relu (goal <= {GOALS['memory']})"
            for mode in MODES) + " |", "|---" * (1 + 4 * len(MODES)) + "|"]
        lines += [f"| {name} | " + " | ".join(_cells(res[key], name)) + " |" for name in candidates()]
        lines.append("")
    for where, failed in res["errors"].items():
        lines += [f"- {where}, {name}: {err}" for name, err in failed.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (for --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and one repeat: proves the script runs")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 15, --smoke 1)")
    p.add_argument("--seconds", type=float, default=None, help="length of a timed block (default 0.02)")
    p.add_argument("--parts", nargs="+", choices=["ops", "vit", "resnet"], default=["ops", "vit", "resnet"])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.stderr.write(NO_CUDA + "\n")
        return 2
    if device.type == "cpu":
        torch.set_num_threads(1)  # on a shared CPU, intra-op threads made the smoke run 3x slower
    args.repeats = args.repeats or (1 if args.smoke else 15)
    args.seconds = args.seconds if args.seconds is not None else (0.0 if args.smoke else 0.02)
    sizes = SMOKE if args.smoke else FULL
    torch.backends.cudnn.benchmark = True  # the same for every candidate: each conv's fastest algorithm
    res: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_info()["name"],
                 "torch": torch.__version__, "smoke": args.smoke, "repeats": args.repeats, "seconds": args.seconds,
                 "shape": sizes["shape"], "families": FAMILIES, "goals": GOALS, "errors": {},
                 "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn_benchmark": True}
    res["kernels"] = kernels(device)
    if "ops" in args.parts:
        res["ops"] = bench_ops(sizes["shape"], args, device, res["errors"])
    for key in ("vit", "resnet"):
        if key in args.parts:
            res[key] = bench_model(sizes[key], args, device, res["errors"], key)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    stem = "gpu_speed_smoke" if args.smoke else "gpu_speed"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(res))
    sys.stdout.write(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
