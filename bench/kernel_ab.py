"""A/B of the C++ kernels between a git commit and the working tree, in one run.

Each side runs in its own processes (its own ``src`` and its own kernel build
directory), alternating base, work, base, work ... so that both meet the same
machine state; a case's figure is the median over rounds of each round's median.
One thread. Cases: the lookup table in eval mode (shared and per channel) and
forward + backward of the learnable families on their fused kernels; with ``--cnn``
also one training step of activation_speed's CNN (batch 64, the activation at its
three sites) for ReLU and each learnable case, given as a ratio to ReLU's step on
the same side too.

    python bench/kernel_ab.py --base HEAD [--rounds 7] [--isa avx2] [--cnn]

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


def _cnn_calls(cases: dict) -> dict:
    """One SGD step of activation_speed's CNN per case (and ReLU), as calls."""
    import torch
    from torch import nn

    from activation_speed import CNN

    torch.manual_seed(0)
    x, y = torch.randn(SHAPE[0], 1, 28, 28), torch.randint(0, 10, (SHAPE[0],))
    calls = {}
    for name, spec in {"relu": "relu", **cases}.items():
        model = CNN(spec)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)

        def step(model=model, opt=opt):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        calls[f"CNN step: {name}"] = step
    return calls


def _run_cases(repeats: int, cnn: bool = False) -> dict[str, float]:
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
        out[name] = _median_ms(call, repeats)
    if cnn:
        steps = _cnn_calls({name: spec for name, (kind, spec) in CASES.items() if kind == "learn"})
        for name, step in steps.items():
            out[name] = _median_ms(step, repeats)
    return out


def _median_ms(call, repeats: int) -> float:
    for _ in range(5):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _side(src: Path, ext_dir: Path, repeats: int, isa: str | None, cnn: bool) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src), TORCH_EXTENSIONS_DIR=str(ext_dir), OMP_NUM_THREADS="1")
    if isa:  # torch and the learnable kernels' build, the table kernel's pick, oneDNN and MKL
        from _timing import FORCE_ENV

        env.update(FORCE_ENV[isa])
    code = f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); import kernel_ab; " \
           f"print(json.dumps(kernel_ab._run_cases({repeats}, {cnn})))"
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
    parser.add_argument("--cnn", action="store_true", help="time a CNN training step per case too")
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
            result = _side(src, ext, args.repeats, args.isa, args.cnn)
            if r:
                rounds[side].append(result)
        print(f"round {r}/{args.rounds}", file=sys.stderr, flush=True)
    if not args.rounds:  # --rounds 0: only build both sides' kernels
        return
    rows = []
    for case in rounds["base"][0]:
        base = statistics.median(t[case] for t in rounds["base"])
        work = statistics.median(t[case] for t in rounds["work"])
        rows.append({"case": case, "base_ms": base, "work_ms": work, "work_over_base": work / base})
    relu = {r["case"]: r for r in rows}.get("CNN step: relu")
    for r in rows:  # CNN steps: also as ratios to ReLU's step on the same side
        if relu and r["case"].startswith("CNN step"):
            r["base_x_relu"], r["work_x_relu"] = r["base_ms"] / relu["base_ms"], r["work_ms"] / relu["work_ms"]
    info = cpu_info()
    stem = "kernel_ab" + (f"_{args.isa}" if args.isa else "")
    report = {"cpu": info, "base": commit, "isa": args.isa or info["isa"], "shape": SHAPE,
              "rounds": args.rounds, "repeats": args.repeats, "rows": rows}
    (ROOT / "results" / f"{stem}.json").write_text(json.dumps(report, indent=1))
    lines = [f"CPU: {info['name']}; kernels for {report['isa']}; base {commit[:12]} vs working tree; "
             f"shape {list(SHAPE)}, float32, 1 thread; {args.rounds} alternating rounds of {args.repeats} "
             "calls (median of round medians), wall clock. Learnable rows: forward + backward; pwl: eval forward;"
             " CNN step: one SGD step, x relu on the same side.", "",
             "| case | base ms | work ms | work / base | base x relu | work x relu |", "|---|---|---|---|---|---|"]
    ratio = lambda r, k: f"{r[k]:.3f}" if k in r else "-"  # noqa: E731
    lines += [f"| {r['case']} | {r['base_ms']:.3f} | {r['work_ms']:.3f} | {r['work_over_base']:.3f} | "
              f"{ratio(r, 'base_x_relu')} | {ratio(r, 'work_x_relu')} |" for r in rows]
    (ROOT / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
