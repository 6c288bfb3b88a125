"""How the learnable activations' forward + backward scale with intra-op threads.

Per op, as in ``activation_speed.py`` (default 64x16x28x28 float32, eager), at
each thread count of ``--threads`` (default 1 and 2). The clock is wall time
(``time.perf_counter``): a second thread's work does not show in the calling
thread's CPU time. Repeats are interleaved over thread counts and candidates
(shuffled); the table gives the median and the best (fastest) repeat, and the
speed-up of the best ones, which is the closest a shared machine comes to an idle
one: there a second thread often waits for a core (ReLU itself was 6x slower at
2 threads than at 1 with the load average at 5 on 2 cores). The load average at
the start and end is recorded.

The fused kernels split every call into fixed items of at most 16,384 elements
and hand them to ``at::parallel_for``, so their results do not depend on the
thread count (``tests/test_learnable_kernels.py``) while the work spreads; the
Python and autograd overhead of a call (tens of microseconds) does not.

    python bench/activation_threads.py [--quick] [--threads 1 2] [--shape 64 16 28 28] [--isa avx2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import FORCE_ENV, cpu_info, force_isa, keep_freed_memory  # noqa: E402
from activation_speed import CANDIDATES, _fwd_bwd  # noqa: E402

from actlab import _cpp  # noqa: E402
from actlab.activations import Site, make_activation  # noqa: E402


def bench_threads(shape: list[int], threads: list[int], repeats: int,
                  calls: int = 3) -> dict[str, dict[int, dict[str, float]]]:
    """Median and best wall ms of one forward + backward per thread count and candidate."""
    torch.manual_seed(0)
    x, g = torch.randn(shape, requires_grad=True), torch.randn(shape)
    mods = {name: make_activation(spec, Site(shape[1], "conv")) for name, spec in CANDIDATES.items()}
    mods["relu"] = torch.relu
    times: dict[int, dict[str, list[float]]] = {t: {n: [] for n in mods} for t in threads}
    before = torch.get_num_threads()
    rng = random.Random(0)
    try:
        for t in threads:  # warm-up at every count: thread pools, first-call builds
            torch.set_num_threads(t)
            for fn in mods.values():
                _fwd_bwd(fn, x, g)
        for _ in range(repeats):
            order_t = list(threads)
            rng.shuffle(order_t)
            for t in order_t:
                torch.set_num_threads(t)
                names = list(mods)
                rng.shuffle(names)
                for name in names:
                    start = time.perf_counter()
                    for _ in range(calls):
                        _fwd_bwd(mods[name], x, g)
                    times[t][name].append((time.perf_counter() - start) / calls)
    finally:
        torch.set_num_threads(before)
    return {stat: {t: {n: fn(v) * 1e3 for n, v in d.items()} for t, d in times.items()}
            for stat, fn in (("median", statistics.median), ("best", min))}


def markdown(res: dict) -> str:
    cpu, threads, ms, best = res["cpu"], res["threads"], res["ms"], res["best_ms"]
    first = str(threads[0])
    lines = [
        f"CPU: {cpu['name']} ({cpu['isa']}, {cpu['cores']} logical cores); kernels built for {res['kernel_isa']}, "
        f"torch's CPU capability {cpu['torch_capability']}"
        + (f"; forced: {', '.join(f'{k}={v}' for k, v in cpu['forced'].items())}. " if cpu.get("forced") else ". "),
        f"Shape {res['shape']}, float32, eager forward + backward, wall clock, {res['repeats']} interleaved repeats "
        f"(median, best); load average {res['load'][0]:.1f} before, {res['load'][1]:.1f} after.",
        "",
        "| activation | " + " | ".join(f"{t} thr ms | best | x relu (best)" for t in threads)
        + " | " + " | ".join(f"speed-up {t} thr (best)" for t in threads[1:]) + " |",
        "|---|" + "---|---|---|" * len(threads) + "---|" * (len(threads) - 1),
    ]
    for name in CANDIDATES:
        cells = [f"{ms[str(t)][name]:.2f} | {best[str(t)][name]:.2f} | {best[str(t)][name] / best[str(t)]['relu']:.2f}"
                 for t in threads]
        ups = [f"{best[first][name] / best[str(t)][name]:.2f}" for t in threads[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(ups) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5 repeats instead of 15")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--shape", type=int, nargs="+", default=[64, 16, 28, 28])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--isa", choices=sorted(FORCE_ENV), help="run as on an AVX2-only CPU: torch, actlab, oneDNN and MKL")
    args = p.parse_args(argv)
    force_isa(args.isa)
    keep_freed_memory()
    repeats = args.repeats or (5 if args.quick else 15)
    load_before = os.getloadavg()[0]
    stats = bench_threads(args.shape, args.threads, repeats)
    res = {"shape": args.shape, "threads": args.threads, "repeats": repeats, "clock": "wall",
           "kernels": _cpp.kernels_enabled(), "kernel_isa": _cpp.isa(), "cpu": cpu_info(),
           "load": [load_before, os.getloadavg()[0]],
           "ms": {str(t): d for t, d in stats["median"].items()}, "best_ms": {str(t): d for t, d in stats["best"].items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"activation_threads_{res['kernel_isa']}"
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    (args.out / f"{stem}.md").write_text(markdown(res))
    sys.stdout.write(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
