"""A/B of the C++ kernels between a git commit and the working tree, in one run.

Each side runs in its own processes (its own ``src`` and its own kernel build
directory), alternating base, work, base, work ... so that both meet the same
machine state; a case's figure is the median over rounds of each round's median.
One thread. Cases: the lookup table in eval mode (shared and per channel) and
forward + backward of the learnable families on their fused kernels.

    python bench/kernel_ab.py --base HEAD [--rounds 7] [--isa avx2]

Writes ``bench/results/kernel_ab.{json,md}`` (with ``--isa avx2``: ``kernel_ab_avx2``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
SHAPE = (64, 16, 28, 28)
CASES = {
    "pwl 64 knots, shared (eval)": ("pwl", None),
    "pwl 64 knots, per channel (eval)": ("pwl channel", None),
    "spline 32": ("learn", "spline(knots=32)"),
    "spline cubic 32": ("learn", "spline(knots=32,order=3)"),
    "slaf deg4": ("learn", "slaf(degree=4)"),
    "slaf rbf 4": ("learn", "slaf(degree=4,basis=rbf)"),
    "slaf fourier 4": ("learn", "slaf(degree=4,basis=fourier)"),
    "slaf deg8": ("learn", "slaf(degree=8,basis=chebyshev)"),
    "rational 5/4": ("learn", "rational"),
    "subnet H8 relu": ("learn", "subnet(hidden=8,inner=relu)"),
}


def _run_cases(repeats: int) -> dict[str, float]:
    """In the child process: each case's median time in ms over ``repeats`` calls."""
    import torch

    from actlab.activations import Site, make_activation
    from actlab.compress.modules import PWLActivation
    from _timing import keep_freed_memory

    keep_freed_memory()  # no case pays for fresh pages by the luck of the allocation order
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=g) * 2
    out = {}
    for name, (kind, spec) in CASES.items():
        if kind.startswith("pwl"):
            channels = SHAPE[1] if kind.endswith("channel") else 1
            m = PWLActivation(torch.randn(channels, 64, generator=g), -3.0, 3.0).eval()

            def call(m=m):
                with torch.no_grad():
                    m(x)
        else:
            m = make_activation(spec, Site(SHAPE[1], "conv"))
            xg = x.clone().requires_grad_(True)
            grad = torch.ones_like(x)

            def call(m=m, xg=xg, grad=grad):
                m(xg).backward(grad)
        for _ in range(5):
            call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        out[name] = 1e3 * statistics.median(times)
    return out


def _side(src: Path, ext_dir: Path, repeats: int, isa: str | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src), TORCH_EXTENSIONS_DIR=str(ext_dir), OMP_NUM_THREADS="1")
    if isa:  # torch and the learnable kernels' build, and the table kernel's run-time pick
        env["ATEN_CPU_CAPABILITY"] = env["ACTLAB_PWL_ISA"] = isa
    code = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); import kernel_ab; " \
           f"print(json.dumps(kernel_ab._run_cases({repeats})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if done.returncode != 0:  # a side that does not build or run: its last line, not a traceback of ours
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(print(f"kernel_ab: the run from {src} failed: {last}", file=sys.stderr) or 2)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD", help="the commit to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=7, help="0: only build both sides' kernels")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--isa", choices=["avx2", "avx512"], default=None, help="force the kernels' ISA")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from _timing import cpu_info

    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{args.base}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True)
    if found.returncode != 0:
        sys.exit(print(f"kernel_ab: {args.base!r} is not a commit of this repository", file=sys.stderr) or 2)
    commit = found.stdout.strip()
    tree = REPO / "bench" / "out" / "kernel_ab" / commit[:12]
    if not tree.exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO, check=True,
                       capture_output=True)
    sides = {"base": (tree / "src", tree.parent / f"ext_{commit[:12]}"),
             "work": (REPO / "src", tree.parent / "ext_work")}
    rounds: dict[str, list[dict]] = {"base": [], "work": []}
    for r in range(args.rounds + 1):  # round 0 builds both and warms up; not counted
        for side, (src, ext) in sides.items():
            result = _side(src, ext, args.repeats, args.isa)
            if r:
                rounds[side].append(result)
        print(f"round {r}/{args.rounds}", file=sys.stderr, flush=True)
    if not args.rounds:  # --rounds 0: only build both sides' kernels
        return
    rows = []
    for case in CASES:
        base = statistics.median(t[case] for t in rounds["base"])
        work = statistics.median(t[case] for t in rounds["work"])
        rows.append({"case": case, "base_ms": base, "work_ms": work, "work_over_base": work / base})
    info = cpu_info()
    stem = "kernel_ab" + (f"_{args.isa}" if args.isa else "")
    report = {"cpu": info, "base": commit, "isa": args.isa or info["isa"], "shape": SHAPE,
              "rounds": args.rounds, "repeats": args.repeats, "rows": rows}
    (ROOT / "results" / f"{stem}.json").write_text(json.dumps(report, indent=1))
    lines = [f"CPU: {info['name']}; kernels for {report['isa']}; base {commit[:12]} vs working tree; "
             f"shape {list(SHAPE)}, float32, 1 thread; {args.rounds} alternating rounds of {args.repeats} "
             "calls (median of round medians). Learnable rows: forward + backward; pwl: eval forward.", "",
             "| case | base ms | work ms | work / base |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['base_ms']:.3f} | {r['work_ms']:.3f} | {r['work_over_base']:.3f} |" for r in rows]
    (ROOT / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
