"""The subcommands on the runs of a work directory: ``actlab plot`` and ``actlab compress``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from actlab._console import console as make_console
from actlab.compress import format_report
from actlab.compress.spec import DEFAULT_DEGREE, DEFAULT_KNOTS
from actlab.experiments.compressed import compress_run
from actlab.experiments.figures import plot_curves, plot_youden


def _youden(args: argparse.Namespace) -> None:
    print(plot_youden(args.workdir, args.x, args.y, log=args.log, group=args.group, out=args.out,
                      experiment=args.experiment))


def _curves(args: argparse.Namespace) -> None:
    print(plot_curves(args.workdir, args.key, group=args.group, out=args.out, experiment=args.experiment,
                      band=args.band))


def _common(p: argparse.ArgumentParser, out_default: str) -> None:
    p.add_argument("workdir", help="a work directory with a run store")
    p.add_argument("--group", default="activation",
                   help="the run column(s) that colour the runs, comma-separated (default: activation)")
    p.add_argument("--experiment", help="only the runs of this experiment")
    p.add_argument("--out", help=f"the PNG to write (default: WORKDIR/{out_default})")


def add_plot_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot the runs of a work directory: Youden plots, curves over epochs")
    kinds = p.add_subparsers(dest="plot", required=True)

    y = kinds.add_parser("youden", help="one metric of each run against another, with the line y = x")
    _common(y, "youden.png")
    y.add_argument("--x", default="final_train_error", help="run column on the x axis (default: final_train_error)")
    y.add_argument("--y", default="final_val_error", help="run column on the y axis (default: final_val_error)")
    y.add_argument("--log", action="store_true", help="log scales (runs with a value <= 0 are left out)")
    y.set_defaults(fn=_youden)

    c = kinds.add_parser("curves", help="a per-epoch value over epochs: mean and band over seeds per group")
    _common(c, "curves_KEY.png")
    c.add_argument("--key", default="val_acc",
                   help="a per-epoch key (val_acc, train_loss, ...), or theta_deg / t: their mean over "
                        "activation sites (default: val_acc)")
    c.add_argument("--band", choices=("minmax", "std"), default="minmax",
                   help="the band around the mean over seeds: min to max, or ± one std")
    c.set_defaults(fn=_curves)


def _compress(args: argparse.Namespace) -> None:
    out = compress_run(args.workdir, args.run, method=args.method, knots=args.knots, tolerance=args.tolerance,
                       degree=args.degree, latency=not args.no_latency, onnx=args.onnx, tails=args.tails,
                       device=args.device)
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
    size.add_argument("--knots", type=int, help=f"knots of pwl/cubic (default {DEFAULT_KNOTS})")
    size.add_argument("--degree", type=int, help=f"degree of poly (default {DEFAULT_DEGREE})")
    size.add_argument("--tolerance", type=float, help="max error over the range; picks the smallest size")
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    p.add_argument("--device", help="where the model is calibrated, evaluated and timed, e.g. cuda (default: the "
                   "CPU)")
    p.add_argument("--onnx", metavar="PATH", help="also write the compressed model as ONNX (standard operators)")
    p.add_argument("--tails", choices=("target", "edge"), default="target",
                   help="beyond the calibration range, continue along the original's own tail lines, or along "
                        "the table's end segments (default: target)")
    p.set_defaults(fn=_compress)


def _compare(args: argparse.Namespace) -> None:
    import math

    from actlab.experiments.compare import compare
    from actlab.experiments.results import run_rows, write_csv
    from actlab.store import RunStore

    store = RunStore(args.workdir, create=False)
    try:
        rows = [r for r in run_rows(store) if args.experiment in (None, r["experiment"])]
    finally:
        store.close()
    found = compare(rows, baseline=args.baseline, metric=args.metric)
    path = write_csv([c.as_dict() for c in found], args.workdir / "compare.csv")

    def num(v: float, fmt: str) -> str:
        return "—" if math.isnan(v) else format(v, fmt)

    table = Table(title=f"{args.metric}: activation − {args.baseline} (95 % intervals; p Holm-corrected)")
    for col in ("dataset", "model", "activation", "n", "test", "mean", "diff", "t interval", "bootstrap",
                "p (Holm)", "verdict"):
        table.add_column(col, justify="right" if col in ("n", "mean", "diff", "p (Holm)") else "left")
    for c in found:
        table.add_row(c.dataset, c.model, c.activation, str(c.n), c.test, num(c.activation_mean, ".4f"),
                      num(c.diff, "+.4f"), f"[{num(c.ci_low, '+.4f')}, {num(c.ci_high, '+.4f')}]",
                      f"[{num(c.boot_low, '+.4f')}, {num(c.boot_high, '+.4f')}]", num(c.p_holm, ".3g"), c.verdict)
    console = make_console()
    console.print(table)
    console.print(f"written: {path}")


def add_compare_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="each activation against a baseline over seeds: intervals, p-values")
    p.add_argument("workdir", type=Path, help="a work directory with a run store")
    p.add_argument("--baseline", default="relu", help="the activation the others are compared with (default relu)")
    p.add_argument("--metric", default="test_acc", help="a column of runs.csv (default test_acc)")
    p.add_argument("--experiment", help="only the runs of this experiment")
    p.set_defaults(fn=_compare)
