"""Inference speed of a compressed activation against ReLU and the learned original.

On one 4M-element float32 tensor, under ``torch.inference_mode``: ``torch.relu``;
a 64-knot lookup table fitted to the subnet on [-4, 4], by the hand-vectorised
kernel (``fast="auto"``, actlab.compress._kernel), by the fused
(``torch.compile``) path and by the eager formula; and the uncompressed subnet
activation (1 -> 16 -> 1 with tanh, applied elementwise by broadcasting:
``make_activation("subnet(hidden=16)")`` when the family is registered, else
a local stand-in with the same arithmetic; the result says which). Timings
are interleaved (each repeat runs every candidate once, in a shuffled order,
so that no candidate always sits where preemption is likeliest) and reported
as medians, because the machine is shared; beside wall time, the calling
thread's CPU time (which leaves out time the thread was descheduled) and the
1-minute load average say how much other work got in the way. glibc's
malloc is told to keep freed memory (no trimming, no mmap below 32 MB), so
that no candidate pays for fresh pages (10 ms per 16 MB output here) by the
luck of the allocation order. Intra-op threads default to 1 as in
bench/activation_speed.py. Goals: table <= 1.5x relu, >= 10x faster than subnet,
judged on the fastest table path (the kernel where it builds).

    python bench/compress_speed.py [--quick] [--threads 1] [--repeats 21]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _timing import cpu_info, keep_freed_memory  # noqa: E402

from actlab.activations import make_activation
from actlab.compress import _fastpath, _kernel
from actlab.compress.fit import fit
from actlab.compress.target import Target
from actlab.errors import ActlabError

GOALS = {"pwl_over_relu_max": 1.5, "subnet_over_pwl_min": 10.0}


class StandInSubnet(nn.Module):
    """1 -> H -> 1 with tanh per element, by broadcasting."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1, self.b1 = torch.randn(hidden, generator=g), torch.randn(hidden, generator=g)
        self.w2, self.b2 = torch.randn(hidden, generator=g) / hidden**0.5, torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x[..., None] * self.w1 + self.b1) @ self.w2 + self.b2


def subnet() -> tuple[nn.Module, str]:
    try:
        return make_activation("subnet(hidden=16)").eval(), "actlab subnet(hidden=16)"
    except ActlabError:
        return StandInSubnet(16).eval(), "local stand-in (subnet family not registered)"


def run(quick: bool, repeats: int) -> dict:
    elements = 1 << 20 if quick else 1 << 22
    x = torch.randn(elements // 1024, 1024) * 2
    act, source = subnet()
    lo, hi = torch.tensor([-4.0]), torch.tensor([4.0])
    tables = {fast: fit(Target(act, 1), lo, hi, "pwl", 64, fast=fast).module.eval()
              for fast in ("auto", "compiled", "eager")}
    candidates = {"relu": torch.relu}
    if _kernel.preferred():  # else "auto" would only repeat compiled or eager
        candidates[f"pwl64 kernel ({_kernel.best_isa()})"] = tables["auto"]
    candidates |= {"pwl64 compiled": tables["compiled"], "pwl64 eager": tables["eager"], "subnet H16": act}
    fastest = list(candidates)[1]
    times: dict[str, list[float]] = {name: [] for name in candidates}
    cpu: dict[str, list[float]] = {name: [] for name in candidates}
    faults: dict[str, list[int]] = {name: [] for name in candidates}
    load = [os.getloadavg()[0]]
    with torch.inference_mode():
        for fn in candidates.values():  # warm-up, compiles the fused path
            fn(x)
        reference = tables["eager"](x)
        max_diff = {name: float((candidates[name](x) - reference).abs().max())
                    for name in candidates if name.startswith("pwl64") and name != "pwl64 eager"}
        order = random.Random(0)
        for _ in range(repeats):
            for name in order.sample(list(candidates), len(candidates)):
                fn = candidates[name]
                os.sched_yield()  # start on a fresh time slice, so a short call is rarely cut in two
                start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start, start_cpu = time.perf_counter(), time.thread_time()
                fn(x)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.thread_time() - start_cpu)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults)
    load.append(os.getloadavg()[0])
    median = {name: statistics.median(ts) for name, ts in times.items()}
    median_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    ns = {name: 1e9 * t / elements for name, t in median.items()}
    ratios = {"pwl_over_relu": median[fastest] / median["relu"],
              "subnet_over_pwl": median["subnet H16"] / median[fastest],
              "compiled_over_relu": median["pwl64 compiled"] / median["relu"],
              "pwl_over_relu_cpu_time": median_cpu[fastest] / median_cpu["relu"]}
    return {
        "elements": elements, "repeats": repeats, "threads": torch.get_num_threads(), "subnet": source,
        "fastest_table": fastest, "load_average_before_after": load,
        "fused_path": {"/".join(map(str, k)): v for k, v in _fastpath.chosen_paths().items()},
        "max_abs_diff_vs_eager": max_diff,
        "median_s": median, "median_cpu_s": median_cpu,
        "median_page_faults": {name: statistics.median(f) for name, f in faults.items()}, "ns_per_element": ns, "ratios": ratios,
        "goals_met": {"pwl_over_relu": ratios["pwl_over_relu"] <= GOALS["pwl_over_relu_max"],
                      "subnet_over_pwl": ratios["subnet_over_pwl"] >= GOALS["subnet_over_pwl_min"]},
    }


def markdown(result: dict) -> str:
    title = (f"# Compressed activation speed ({result['elements']} elements, "
             f"{result['threads']} thread(s), median of {result['repeats']})")
    before, after = result["load_average_before_after"]
    cpu = result.get("cpu", {})
    lines = [title, "", f"CPU: {cpu.get('name', '?')} ({cpu.get('isa', '?')}); kernel path "
             f"{result['fastest_table']}.", "", f"subnet: {result['subnet']}; 1-minute load average {before:.1f} before, "
             f"{after:.1f} after ({os.cpu_count()} CPUs)", "",
             "| activation | median ms | ns / element | vs relu | median CPU ms | CPU vs relu |",
             "|---|---|---|---|---|---|"]
    relu, relu_cpu = result["median_s"]["relu"], result["median_cpu_s"]["relu"]
    for name, t in result["median_s"].items():
        c = result["median_cpu_s"][name]
        lines.append(f"| {name} | {1e3 * t:.3f} | {result['ns_per_element'][name]:.3f} | {t / relu:.2f}x "
                     f"| {1e3 * c:.3f} | {c / relu_cpu:.2f}x |")
    r, g = result["ratios"], result["goals_met"]
    met = {k: "met" if v else "missed" for k, v in g.items()}
    fastest = result["fastest_table"]
    lines += ["", f"- {fastest} / relu: {r['pwl_over_relu']:.2f}x (goal <= 1.5x: {met['pwl_over_relu']})",
              f"- subnet / {fastest}: {r['subnet_over_pwl']:.1f}x (goal >= 10x: {met['subnet_over_pwl']})",
              f"- {fastest} / relu in CPU time: {r['pwl_over_relu_cpu_time']:.2f}x",
              f"- pwl64 compiled / relu: {r['compiled_over_relu']:.2f}x"]
    lines += [f"- {name} vs eager table, max abs difference: {d:.2e}"
              for name, d in result["max_abs_diff_vs_eager"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1M elements and 5 repeats")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory()
    result = run(args.quick, args.repeats or (5 if args.quick else 21)) | {"malloc_keeps_freed_memory": kept,
                                                                         "cpu": cpu_info()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compress_speed.json").write_text(json.dumps(result, indent=2, default=str))
    (args.out / "compress_speed.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
