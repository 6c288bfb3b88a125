"""``actlab compress WORKDIR RUN``: compress a stored run and store the result beside it."""

from __future__ import annotations

import argparse


def _compress(args: argparse.Namespace) -> None:
    from rich.table import Table

    from actlab._console import console as make_console

    from actlab.compress.stored import compress_run
    from actlab.compress.surgery import format_report

    out = compress_run(args.workdir, args.run, method=args.method, knots=args.knots, tolerance=args.tolerance,
                       degree=args.degree, latency=not args.no_latency, onnx=args.onnx)
    console = make_console()
    console.print(format_report(out["sites"]))
    table = Table(title=f"{out['activation']} (run {out['run_id']}, from {out['original']})")
    for col in ("model", "test acc %", "FLOPs/sample", "activation FLOPs", "params", "stored numbers",
                "latency b1 ms",
                "latency b256 ms"):
        table.add_column(col, justify="right")
    for name, prefix in (("original", "original_"), ("compressed", "")):
        acc = out["original_test_acc"] if prefix else out["test_acc"]
        latency = [f"{out[f'{prefix}latency_b{b}_ms']:.3f}" if f"{prefix}latency_b{b}_ms" in out else "—"
                   for b in (1, 256)]
        table.add_row(name, f"{100 * acc:.2f}", f"{out[prefix + 'flops']:,.0f}",
                      f"{out[prefix + 'activation_flops']:,.0f}", f"{out[prefix + 'params']:,}",
                      f"{out[prefix + 'stored']:,}", *latency)
    console.print(table)
    console.print(f"test accuracy change: {out['delta_pp']:+.2f} percentage points")
    if "onnx" in out:
        console.print(f"ONNX: {out['onnx']} (ONNX Runtime vs PyTorch on the test set, max abs logit difference "
                      f"{out['onnx_max_abs_diff']:.1e})")


def add_compress_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compress", help="replace a trained run's learned activations by lookup tables or splines")
    p.add_argument("workdir", help="a work directory with a run store")
    p.add_argument("run", help="the run id (a unique prefix is enough; see runs.csv)")
    p.add_argument("--method", default="pwl", help="pwl (lookup table), cubic or poly (default pwl)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--knots", type=int, help="knots of pwl/cubic (default 64)")
    size.add_argument("--degree", type=int, help="degree of poly (default 6)")
    size.add_argument("--tolerance", type=float, help="max error over the range; picks the smallest size")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--onnx", metavar="PATH", help="also write the compressed model as ONNX (standard operators)")
    p.set_defaults(fn=_compress)
