"""Tables of results: per run, and mean ± std over seeds per configuration."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from actlab._console import console as make_console

from actlab.store import RunStore

GROUP = ("experiment", "dataset", "model", "activation")


def run_rows(store: RunStore) -> list[dict]:
    """One flat row per run: its config, status, test metrics and final epoch metrics."""
    rows = []
    for run in store.runs():
        cfg, info = run["config"], run["info"]
        history = store.history(run["run_id"])
        last = history[-1] if history else {}
        row = {
            "run_id": run["run_id"], "experiment": run["experiment"],
            "dataset": info.get("dataset_description", cfg["dataset"]), "model": cfg["model"],
            "activation": cfg["activation"], "seed": cfg["seed"], "status": run["status"],
            "diverged_epoch": run["diverged_epoch"], "params": info.get("params"),
            "train_time": info.get("train_time"), "epochs": len(history),
        }
        row |= {f"test_{k}": v for k, v in run["test"].items()}
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            row[f"final_{key}"] = last.get(key)
        if last:
            row["final_train_error"] = 1 - last["train_acc"]
            row["final_val_error"] = 1 - last["val_acc"]
        rows.append(row)
    return rows


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std; the std of one value is NaN (unknown), not 0."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def summary_rows(rows: list[dict]) -> list[dict]:
    """Mean ± std over seeds of each (experiment, dataset, model, activation)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in GROUP), []).append(row)
    out = []
    for key, members in groups.items():
        done = [r for r in members if r["status"] == "done"]
        acc_mean, acc_std = _mean_std([r["test_acc"] for r in done])
        f1_mean, f1_std = _mean_std([r["test_f1"] for r in done])
        time_mean, _ = _mean_std([r["train_time"] for r in done if r["train_time"] is not None])
        out.append(dict(zip(GROUP, key)) | {
            "seeds": len(done), "diverged": sum(r["status"] == "diverged" for r in members),
            "failed": sum(r["status"] == "failed" for r in members),
            "unfinished": sum(r["status"] in ("running", "pending") for r in members),
            "test_acc_mean": acc_mean, "test_acc_std": acc_std, "test_f1_mean": f1_mean, "test_f1_std": f1_std,
            "params": members[0]["params"], "train_time_mean": time_mean,
        })
    return out


def fmt_pm(mean: float, std: float, scale: float = 100.0, digits: int = 2) -> str:
    """``mean ± std``; one seed shows ``(n = 1)`` instead of a spread it does not have."""
    if mean != mean:  # NaN: no finished run
        return "—"
    if std != std:
        return f"{mean * scale:.{digits}f} (n = 1)"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def print_summary(summary: list[dict], console: Console | None = None, title: str = "Results") -> None:
    """A rich table; columns whose value is the same in every row move into the caption."""
    columns = ["experiment", "dataset", "model", "activation"]
    shared = [c for c in columns if len({r[c] for r in summary}) == 1 and summary]
    caption = "; ".join(f"{c}: {summary[0][c]}" for c in shared)
    table = Table(title=title, caption=caption, caption_justify="left")
    varying = [c for c in columns if c not in shared]
    for col in varying:
        table.add_column(col, overflow="fold")
    for col in ("seeds", "test acc % (mean ± std)", "macro F1 %", "params", "train s"):
        table.add_column(col, justify="right")
    for row in summary:
        notes = "".join(f" ({row[k]} {k})" for k in ("diverged", "failed", "unfinished") if row[k])
        table.add_row(
            *[str(row[c]) for c in varying], f"{row['seeds']}{notes}",
            fmt_pm(row["test_acc_mean"], row["test_acc_std"]), fmt_pm(row["test_f1_mean"], row["test_f1_std"]),
            f"{row['params']:,}" if row["params"] else "—",
            f"{row['train_time_mean']:.1f}" if row["train_time_mean"] == row["train_time_mean"] else "—",
        )
    (console or make_console()).print(table)


def write_csv(rows: list[dict], path: Path) -> Path:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    return path


def export(store: RunStore) -> tuple[list[dict], list[dict]]:
    """Write ``runs.csv`` and ``summary.csv`` into the work directory; return both tables."""
    rows = run_rows(store)
    summary = summary_rows(rows)
    write_csv(rows, store.workdir / "runs.csv")
    write_csv(summary, store.workdir / "summary.csv")
    return rows, summary
