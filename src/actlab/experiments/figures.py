"""Figures of the runs of a work directory, as ``actlab plot youden|curves`` writes them.

Any run can be plotted; for annealing runs, ``theta_deg`` and ``t`` are the
means over activation sites of the per-site values they log.
"""

from __future__ import annotations

from pathlib import Path

from actlab.annealing.report import grouped, with_site_means
from actlab.errors import ActlabError
from actlab.experiments.results import run_rows
from actlab.plots import curves_plot, youden_from_results
from actlab.store import RunStore


def _describe_keys(keys: set[str]) -> str:
    """Record keys for an error message, the per-site and per-parameter ones summarised."""
    per_site = sorted(k for k in keys if k.startswith(("act/", "param/")))
    plain = ", ".join(sorted(set(keys) - set(per_site)))
    if not per_site:
        return plain
    return f"{plain}; and {len(per_site)} per-site keys such as {', '.join(per_site[:3])}"


def _open(workdir: str | Path, experiment: str | None) -> tuple[RunStore, list[dict]]:
    store = RunStore(workdir, create=False)
    rows = run_rows(store)
    if experiment is not None:
        names = sorted({r["experiment"] for r in rows})
        rows = [r for r in rows if r["experiment"] == experiment]
        if not rows:
            store.close()
            raise ActlabError(f"no runs of experiment {experiment!r} in {workdir}; experiments: {', '.join(names)}")
    if not rows:
        store.close()
        raise ActlabError(f"no runs in {workdir}")
    return store, rows


def plot_youden(workdir: str | Path, x: str = "final_train_error", y: str = "final_val_error", log: bool = False,
                group: str = "activation", out: str | Path | None = None, experiment: str | None = None) -> Path:
    """Write a Youden plot of ``y`` against ``x`` over the runs of a work directory; return its path.

    ``x`` and ``y`` are columns of :func:`actlab.experiments.results.run_rows`;
    markers are numbered in run order and coloured by ``group``.
    """
    store, rows = _open(workdir, experiment)
    store.close()
    for key in (x, y):
        if not any(key in row for row in rows):
            raise ActlabError(f"unknown metric {key!r}; keys are: {', '.join(sorted({k for r in rows for k in r}))}")
    rows = grouped(rows, group)
    fig = youden_from_results(rows, x, y, group_key="_group", log=log)
    fig.axes[0].set_title(f"{Path(workdir).name}" + (f": {experiment}" if experiment else ""))
    path = Path(out) if out else Path(workdir) / "youden.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_curves(workdir: str | Path, key: str = "val_acc", group: str = "activation",
                out: str | Path | None = None, experiment: str | None = None, band: str = "minmax") -> Path:
    """Write ``key`` over epochs (mean and band over seeds per group); return the PNG's path.

    ``key`` is any per-epoch record key, or ``theta_deg`` / ``t`` for the
    mean over activation sites. Groups whose runs lack ``key`` are left out.
    """
    store, rows = _open(workdir, experiment)
    rows = grouped(rows, group)
    histories: dict[str, list[list[dict]]] = {}
    for row in rows:
        histories.setdefault(row["_group"], []).append(with_site_means(store.history(row["run_id"])))
    store.close()
    having = {g: runs for g, runs in histories.items() if all(run and key in run[0] for run in runs)}
    if not having:
        available = {k for runs in histories.values() for run in runs for rec in run for k in rec}
        raise ActlabError(f"no run logged {key!r}; keys are: {_describe_keys(available)}")
    fig = curves_plot(having, key, band=band)
    fig.axes[0].set_title(f"{Path(workdir).name}" + (f": {experiment}" if experiment else ""))
    path = Path(out) if out else Path(workdir) / f"curves_{key.replace('/', '_')}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
