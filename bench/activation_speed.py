"""Speed and memory of the learnable activations against ReLU.

Per op: forward + backward of each activation on one tensor (default
64x16x28x28 float32, requires_grad), eager and under torch.compile. Per
model: one training step of a small CNN (conv 16@4x4, 16@3x3, 16@3x3, dense
head; 28x28 inputs, batch 64) with the activation at every site. Memory is
the bytes of the tensors autograd saves for backward, counted with
``torch.autograd.graph.saved_tensors_hooks`` (each storage once), which works
on CPU; it is the activation memory a training step holds, not RSS.

Timings are interleaved (every repeat runs every candidate once, in a
shuffled order) and reported as medians, because the machine is shared. Intra-op
threads default to 1: on 2 shared cores a second thread made torch.relu on
this tensor 100x slower (18 ms vs 0.18 ms) whenever another process was busy.
With one thread all the work runs on the calling thread, so the default clock
is that thread's CPU time (``time.thread_time``): time-slicing by other
processes does not count, cache and memory contention still do.
``--clock wall`` uses ``time.perf_counter``. Freed memory is kept by the allocator
(``_timing.keep_freed_memory``): otherwise glibc hands the large activation
buffers back to the OS after a step and the next step page-faults them in again,
0 to ~2,000 minor faults per CNN step depending on which candidates ran before,
which moved a step by up to ~4 ms (20-25 % of ReLU's step) by chance. A learned
activation keeps its input besides its output (twice ReLU's saved bytes), so
its steps sat higher in the heap and faulted more often.

torch.compile: every candidate is compiled with ``dynamic=False`` at the same
thread count and called until a call adds no graph (no recompilation) before
timing. ReLU's compiled graph saves the mask ``x <= 0`` as a bool tensor, and
inductor's bool store is slow on CPU; ``compile_probe`` times that store alone
so the "x compiled relu" column can be read against it.

The learnable families run their fused C++ kernels (float32, contiguous);
``ACTLAB_KERNELS=0`` measures the PyTorch reference paths instead.

    python bench/activation_speed.py [--quick] [--threads 1] [--clock cpu|wall] [--no-compile] [--isa avx2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _timing import FORCE_ENV, cpu_info, force_isa, keep_freed_memory  # noqa: E402

from actlab import _cpp  # noqa: E402
from actlab.activations import Site, make_activation

CANDIDATES = {
    "relu": "relu",
    "slaf deg4": "slaf(degree=4)",
    "slaf deg8": "slaf(degree=8,basis=chebyshev)",
    "slaf deg4 channel": "slaf(degree=4,sharing=channel)",
    "slaf fourier 4": "slaf(degree=4,basis=fourier)",
    "slaf rbf 4": "slaf(degree=4,basis=rbf)",
    "spline 32": "spline(knots=32)",
    "spline 128": "spline(knots=128)",
    "spline cubic 32": "spline(knots=32,order=3)",
    "rational 5/4": "rational(num=5,den=4)",
    "subnet H8": "subnet(hidden=8)",
    "subnet H32": "subnet(hidden=32)",
}
GOALS = {"op_eager": 3.0, "op_compiled": 2.0, "cnn_step": 1.3, "memory_per_site": 2.0}


def _fwd_bwd(fn, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    fn(x).backward(g)


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}
_clock = CLOCKS["cpu"]


def _interleaved(fns: dict, run, repeats: int) -> dict[str, float]:
    # Shuffled rounds: a fixed order would always run the same candidate right
    # after subnet H32 has freed ~100 MB, and charge it the allocator's aftermath.
    times: dict[str, list[float]] = {name: [] for name in fns}
    order, rng = list(fns), random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            fn = fns[name]
            start = _clock()
            run(fn)
            times[name].append(_clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["stats"].values()) + sum(counters["aot_autograd"].values())


def _warm_compiled(c, x: torch.Tensor, g: torch.Tensor, limit: int = 8) -> int:
    """Call until a call compiles nothing new; the number of calls it took."""
    for calls in range(1, limit + 1):
        before = _graphs()
        _fwd_bwd(c, x, g)
        if calls > 1 and _graphs() == before:
            return calls
    raise RuntimeError(f"still recompiling after {limit} calls")


def compile_probe(shape: list[int], repeats: int) -> dict:
    """Time the bool mask store of compiled ReLU's graph alone, eager and compiled."""
    x = torch.randn(shape)
    mask = torch.compile(lambda t: t <= 0, dynamic=False)
    for _ in range(3):
        mask(x)
    times = _interleaved({"eager": lambda t: t <= 0, "compiled": mask}, lambda fn: fn(x), repeats)
    return {f"mask_store_{k}_ms": v * 1e3 for k, v in times.items()}


def saved_bytes(step) -> int:
    """Bytes of the distinct storages autograd saves during ``step()``."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


class CNN(nn.Module):
    def __init__(self, spec: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 16, 4), nn.Conv2d(16, 16, 3), nn.Conv2d(16, 16, 3)])
        self.acts = nn.ModuleList([make_activation(spec, Site(16, "conv", i)) for i in range(3)])
        self.head = nn.Linear(16 * 21 * 21, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.acts):
            x = act(conv(x))
        return self.head(x.flatten(1))


def bench_ops(shape: list[int], repeats: int, compile_: bool) -> dict:
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    g = torch.randn(shape)
    mods = {name: make_activation(spec, Site(shape[1], "conv")) for name, spec in CANDIDATES.items()}
    mods["relu"] = torch.relu
    out: dict = {"eager_ms": {}, "compiled_ms": {}, "compile_errors": {}, "saved_bytes": {}}
    eager = _interleaved(mods, lambda fn: _fwd_bwd(fn, x, g), repeats)
    out["eager_ms"] = {k: v * 1e3 for k, v in eager.items()}
    for name, fn in mods.items():
        out["saved_bytes"][name] = saved_bytes(lambda fn=fn: fn(x))
    if compile_:
        compiled, out["warm_calls"] = {}, {}
        for name, fn in mods.items():
            try:
                c = torch.compile(fn, dynamic=False)
                out["warm_calls"][name] = _warm_compiled(c, x, g)
                compiled[name] = c
            except Exception as exc:  # a failed compile is a result, not a crash
                out["compile_errors"][name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        times = _interleaved(compiled, lambda fn: _fwd_bwd(fn, x, g), repeats)
        out["compiled_ms"] = {k: v * 1e3 for k, v in times.items()}
    return out


def bench_cnn(batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    models = {name: CNN(spec) for name, spec in CANDIDATES.items()}
    opts = {name: torch.optim.SGD(m.parameters(), lr=1e-3) for name, m in models.items()}

    def step(name: str) -> None:
        opts[name].zero_grad()
        nn.functional.cross_entropy(models[name](x), y).backward()
        opts[name].step()

    times = _interleaved({n: n for n in models}, step, repeats)
    memory = {n: saved_bytes(lambda n=n: nn.functional.cross_entropy(models[n](x), y)) for n in models}
    return {"step_ms": {k: v * 1e3 for k, v in times.items()}, "saved_bytes": memory}


def _ratio(d: dict, name: str) -> float | None:
    return d[name] / d["relu"] if name in d and "relu" in d else None


def markdown(res: dict) -> str:
    ops, cnn = res["ops"], res["cnn"]
    kernels = "fused C++ kernels" if res["kernels"] else "PyTorch reference paths (ACTLAB_KERNELS=0)"
    cpu = res["cpu"]
    lines = [
        f"CPU: {cpu['name']} ({cpu['isa']}); kernels built for {res['kernel_isa']}, torch's CPU capability "
        f"{cpu['torch_capability']}; " + (f"forced: {', '.join(f'{k}={v}' for k, v in cpu['forced'].items())} "
                                          if cpu.get("forced") else "nothing forced ") +
        "(--isa avx2 holds torch, actlab, oneDNN and MKL to AVX2). ",
        f"Shape {res['shape']}, float32, {res['threads']} thread(s), {res['repeats']} interleaved repeats "
        f"(medians), clock: {res['clock']}; learnable families on {kernels}. Memory: bytes saved for "
        f"backward (saved_tensors_hooks, each storage once).",
        "",
        "| activation | eager ms | x relu | compiled ms | x compiled relu | x eager relu | saved MB/site "
        "| x relu | CNN step ms | x relu | CNN saved MB | x relu |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CANDIDATES:
        def cell(d: dict, scale: float = 1.0) -> str:
            if name in d:
                return f"{d[name] * scale:.2f}"
            return "skipped" if d is ops["compiled_ms"] and not res["compiled"] else "error"

        def rat(d: dict) -> str:
            r = _ratio(d, name)
            return f"{r:.2f}" if r is not None else "-"

        compiled = ops["compiled_ms"].get(name)
        vs_eager = f"{compiled / ops['eager_ms']['relu']:.2f}" if compiled is not None else "-"
        lines.append(
            f"| {name} | {cell(ops['eager_ms'])} | {rat(ops['eager_ms'])} | {cell(ops['compiled_ms'])} | "
            f"{rat(ops['compiled_ms'])} | {vs_eager} | {cell(ops['saved_bytes'], 1e-6)} | {rat(ops['saved_bytes'])} | "
            f"{cell(cnn['step_ms'])} | {rat(cnn['step_ms'])} | {cell(cnn['saved_bytes'], 1e-6)} | "
            f"{rat(cnn['saved_bytes'])} |")
    for name, err in ops["compile_errors"].items():
        lines.append(f"\ncompile error for {name}: {err}")
    if "probe" in res:
        p = res["probe"]
        lines.append(f"\nCompiled relu saves a bool mask; storing it alone takes {p['mask_store_compiled_ms']:.2f} ms "
                     f"compiled vs {p['mask_store_eager_ms']:.2f} ms eager, so read 'x eager relu' for compiled "
                     f"candidates as well.")
    lines.append(f"\nGoals: op eager <= {GOALS['op_eager']}x, compiled <= {GOALS['op_compiled']}x, "
                 f"CNN step <= {GOALS['cnn_step']}x (all but subnet), memory per site <= {GOALS['memory_per_site']}x.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 repeats instead of 20")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--shape", type=int, nargs="+", default=[64, 16, 28, 28])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="thread CPU time (default) or wall time")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--isa", choices=sorted(FORCE_ENV), help="run as on an AVX2-only CPU: torch, actlab, oneDNN and MKL")
    args = p.parse_args(argv)
    force_isa(args.isa)
    global _clock
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    _clock = CLOCKS[args.clock]
    repeats = args.repeats or (5 if args.quick else 20)
    res = {"shape": args.shape, "threads": args.threads, "repeats": repeats, "clock": args.clock,
           "kernels": _cpp.kernels_enabled(), "torch": torch.__version__, "candidates": CANDIDATES, "goals": GOALS,
           "cpu": cpu_info(), "kernel_isa": _cpp.isa(), "compiled": not args.no_compile}
    res["ops"] = bench_ops(args.shape, repeats, not args.no_compile)
    if not args.no_compile:
        res["probe"] = compile_probe(args.shape, repeats)
    res["cnn"] = bench_cnn(args.shape[0], repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"activation_speed_{res['kernel_isa']}"  # one file per instruction set the kernels ran on
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(res))
    sys.stdout.write(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
