"""``actlab plot youden|curves WORKDIR``: figures of the runs in a work directory.

Importing this module (``actlab.cli_extras`` does) also registers the
annealing section of the HTML report.
"""

from __future__ import annotations

import argparse

from actlab.annealing.report import plot_curves, plot_youden


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
    c.add_argument("--band", choices=("minmax", "std"), default="minmax")
    c.set_defaults(fn=_curves)
