"""The ``actlab`` command line: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from actlab._registry import unknown_name_message
from actlab.demo import CONFIG, run_demo
from actlab.errors import ActlabError
from actlab.experiments import load_config, write_report
from actlab.experiments.cli import add_compare_command, add_compress_command, add_plot_command
from actlab.experiments.pipeline import run_pipeline
from actlab.experiments.results import export, print_summary, write_csv
from actlab.registries import registries
from actlab.search.cli import add_search_command
from actlab.store import RunStore


def _run(args: argparse.Namespace) -> None:
    cfg = load_config(args.config)
    if args.data_dir:
        cfg = cfg.model_copy(update={"data_dir": args.data_dir})
    run_pipeline(cfg, Path(args.workdir or Path("runs") / cfg.name), progress=not args.no_progress,
                 report=not args.no_report, workers=args.workers, ray=args.ray, ray_address=args.ray_address,
                 threads=args.threads, device=args.device)


def _results(args: argparse.Namespace) -> None:
    store = RunStore(args.workdir, create=False)
    rows, summary = export(store)
    print_summary(summary, title=str(args.workdir))
    if args.csv:
        write_csv(summary, Path(args.csv))
    print(f"CSV: {store.workdir / 'summary.csv'} (per run: {store.workdir / 'runs.csv'})")


def _report(args: argparse.Namespace) -> None:
    print(f"report: {write_report(args.workdir)}")


def _demo(args: argparse.Namespace) -> None:
    run_demo(Path(args.workdir), epochs=args.epochs, progress=not args.no_progress, config=args.config or CONFIG)


def _list(args: argparse.Namespace) -> None:
    regs = registries()
    for kind in [args.kind] if args.kind else regs:
        if kind not in regs:
            raise ActlabError(unknown_name_message("registry", kind, list(regs)))
        if kind == "activations" and args.kind:  # asked for on its own: each family with its options
            for name in regs[kind]:
                print(f"  {name}{_options(name)}")
        else:
            print(f"{kind}: {', '.join(regs[kind])}")


def _options(name: str) -> str:
    """``(key=default, ...)`` of an activation's factory, as a spec would write them."""
    import inspect

    from actlab.activations import ACTIVATIONS

    params = inspect.signature(ACTIVATIONS.get(name)).parameters.values()
    shown = [f"{p.name}={p.default!r}" if p.default is not inspect.Parameter.empty else p.name
             for p in params if p.name != "site" and p.kind not in (p.POSITIONAL_ONLY, p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    return f"({', '.join(shown)})" if shown else ""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("actlab")
    except PackageNotFoundError:  # run from a source tree without installing
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"actlab {_version()}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run an experiment grid from a TOML config")
    p.add_argument("config", help="a TOML experiment file")
    p.add_argument("--workdir", help="where the run store goes (default runs/<name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-report", action="store_true", help="skip writing report.html")
    p.add_argument("--workers", type=int, default=0, help="worker processes training runs in parallel (default 0: "
                   "train in this process)")
    p.add_argument("--ray", action="store_true", help="train runs as Ray tasks (a local Ray instance)")
    p.add_argument("--ray-address", help="train runs as Ray tasks on this cluster (implies --ray)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    p.add_argument("--device", help="where runs train, e.g. cuda (default: the CPU)")
    p.add_argument("--data-dir", help="where mnist, fashion_mnist and cifar10 are read from (overrides the config's "
                   "data_dir)")
    p.set_defaults(fn=_run)

    p = sub.add_parser("results", help="print the results table of a work directory and write CSV")
    p.add_argument("workdir", help="a work directory with a run store")
    p.add_argument("--csv", help="also write the summary table here")
    p.set_defaults(fn=_results)

    p = sub.add_parser("report", help="write report.html for a work directory")
    p.add_argument("workdir", help="a work directory with a run store")
    p.set_defaults(fn=_report)

    p = sub.add_parser("demo", help="the main job: MNIST-10k CNN with fixed, learned and annealed activations")
    p.add_argument("--workdir", default="demo_out", help="where the demo's runs and report go")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the config's)")
    p.add_argument("--config", help="another experiment file to run as the demo (default: the demo's grid)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("list", help="list registered names (activations, operators, datasets, ...)")
    p.add_argument("kind", nargs="?", help="one registry (activations, operators, datasets, ...); default: all")
    p.set_defaults(fn=_list)

    add_plot_command(sub)
    add_compare_command(sub)
    add_compress_command(sub)
    add_search_command(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Every (sub)command's help lists each option's default after its help text."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except ActlabError as exc:
        print(f"actlab: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (actlab list | head): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT):
            raise
        # the machine's state, not a bug: a read-only or full work directory (runs already stored stay stored)
        print(f"actlab: error: cannot write {exc.filename or 'a file'}: {exc.strerror}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actlab: interrupted; finished runs and epochs are kept in the run store", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
