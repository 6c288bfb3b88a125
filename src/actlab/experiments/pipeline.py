"""The whole job of ``actlab run`` and ``actlab demo``: train the grid, store the resolved
config beside the results, optionally compress, print the table, write the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from actlab._console import console as make_console
from actlab.experiments.compressed import compress_run
from actlab.experiments.config import ExperimentConfig
from actlab.experiments.report import write_report
from actlab.experiments.results import export, print_summary
from actlab.experiments.runner import run_experiment

RESOLVED = "config.resolved.json"


def run_pipeline(cfg: ExperimentConfig, workdir: str | Path, progress: bool = True, report: bool = True,
                 compress: Sequence[str] = (), title: str | None = None, table_title: str | None = None,
                 **parallel: object) -> tuple[list[dict], Path | None]:
    """Train every unfinished run of ``cfg`` into ``workdir``; return the summary rows and the report's path.

    ``compress`` names activation families (``subnet``, ``slaf``, ...) whose trained runs are also
    compressed to a lookup table of the default size, stored as derived runs beside them.
    ``parallel`` (``workers``, ``ray``, ``ray_address``, ``threads``) goes to :func:`run_experiment`.
    """
    workdir = Path(workdir)
    console = make_console()
    store = run_experiment(cfg, workdir, progress=progress, **parallel)
    (workdir / RESOLVED).write_text(cfg.model_dump_json(indent=2))
    for run in store.runs(cfg.name):
        spec = run["config"]
        if spec["activation"].split("(")[0] in compress and run["status"] == "done" and "compressed_from" not in spec:
            compress_run(workdir, run["run_id"], method="pwl", latency=False)
    _, summary = export(store)
    print_summary(summary, console, title=table_title or f"{cfg.name} ({workdir})")
    store.close()
    path = write_report(workdir, title=title or cfg.name) if report else None
    if path is not None:
        console.print(f"report: {path}")
    return summary, path
