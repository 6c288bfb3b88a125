"""The ``actlab`` command line: each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from actlab.errors import ActlabError


def _run(args: argparse.Namespace) -> None:
    from actlab.experiments import load_config, run_experiment, write_report
    from actlab.experiments.results import export, print_summary

    cfg = load_config(args.config)
    workdir = Path(args.workdir or Path("runs") / cfg.name)
    store = run_experiment(cfg, workdir, progress=not args.no_progress)
    (workdir / "config.resolved.json").write_text(cfg.model_dump_json(indent=2))
    _, summary = export(store)
    print_summary(summary, title=f"{cfg.name} ({workdir})")
    store.close()
    if not args.no_report:
        print(f"report: {write_report(workdir, title=cfg.name)}")


def _results(args: argparse.Namespace) -> None:
    from actlab.experiments.results import export, print_summary, write_csv
    from actlab.store import RunStore

    store = RunStore(args.workdir, create=False)
    rows, summary = export(store)
    print_summary(summary, title=str(args.workdir))
    if args.csv:
        write_csv(summary, Path(args.csv))
    print(f"CSV: {store.workdir / 'summary.csv'} (per run: {store.workdir / 'runs.csv'})")


def _report(args: argparse.Namespace) -> None:
    from actlab.experiments import write_report

    print(f"report: {write_report(args.workdir)}")


def _demo(args: argparse.Namespace) -> None:
    from actlab.demo import run_demo

    run_demo(Path(args.workdir), epochs=args.epochs, progress=not args.no_progress)


def _list(args: argparse.Namespace) -> None:
    from actlab.registries import registries

    regs = registries()
    for kind in [args.kind] if args.kind else regs:
        if kind not in regs:
            from actlab._registry import unknown_name_message

            raise ActlabError(unknown_name_message("registry", kind, list(regs)))
        print(f"{kind}: {', '.join(regs[kind])}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run an experiment grid from a TOML config")
    p.add_argument("config")
    p.add_argument("--workdir", help="where the run store goes (default runs/<name>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-report", action="store_true")
    p.set_defaults(fn=_run)

    p = sub.add_parser("results", help="print the results table of a work directory and write CSV")
    p.add_argument("workdir")
    p.add_argument("--csv", help="also write the summary table here")
    p.set_defaults(fn=_results)

    p = sub.add_parser("report", help="write report.html for a work directory")
    p.add_argument("workdir")
    p.set_defaults(fn=_report)

    p = sub.add_parser("demo", help="the main job: MNIST-10k CNN with fixed, learned and annealed activations")
    p.add_argument("--workdir", default="demo_out")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the demo's setting)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(fn=_demo)

    p = sub.add_parser("list", help="list registered names (activations, operators, datasets, ...)")
    p.add_argument("kind", nargs="?")
    p.set_defaults(fn=_list)

    for extra in _extra_commands():
        extra(sub)
    return parser


def _extra_commands():
    """Subcommands of the other parts (plot, compress, search), added when present."""
    from actlab import cli_extras

    return cli_extras.COMMANDS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except ActlabError as exc:
        print(f"actlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("actlab: interrupted; finished runs and epochs are kept in the run store", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
