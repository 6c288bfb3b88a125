"""The run store: an embedded SQLite database in a work directory.

WAL mode and one transaction per epoch, so killing a process at any moment
loses at most the epoch in flight. A run is identified by a hash of its
resolved config; re-running an experiment skips runs that are ``done`` or
``diverged`` and restarts the others from scratch.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actlab.errors import ActlabError

DB_NAME = "actlab.sqlite"
FINISHED = ("done", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    diverged_epoch INTEGER,
    error TEXT,
    test TEXT,
    info TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    epoch INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
"""


@contextmanager
def immediate_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error): takes the write lock up front, so
    concurrent writers wait for each other instead of failing half-way."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def run_id(config: dict) -> str:
    """A stable id for a resolved run config."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


class RunStore:
    """Runs, their per-epoch metrics and small JSON artifacts (activation curves)."""

    def __init__(self, workdir: str | Path, create: bool = True) -> None:
        self.workdir = Path(workdir)
        path = self.workdir / DB_NAME
        if not create and not path.exists():
            raise ActlabError(f"no run store in {self.workdir} (expected {path}); run an experiment there first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we open transactions explicitly, one per epoch.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def transaction(self):
        return immediate_transaction(self.db)

    def close(self) -> None:
        self.db.close()

    def status(self, rid: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE run_id=?", (rid,)).fetchone()
        return row["status"] if row else None

    def start_run(self, rid: str, experiment: str, config: dict, info: dict | None = None) -> None:
        """Register a run as running, wiping whatever an interrupted attempt left."""
        now = time.time()
        with self.transaction() as db:
            db.execute("DELETE FROM epochs WHERE run_id=?", (rid,))
            db.execute("DELETE FROM artifacts WHERE run_id=?", (rid,))
            db.execute(
                "INSERT INTO runs(run_id, experiment, config, status, created, updated, info)"
                " VALUES(?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET status='running',"
                " updated=excluded.updated, diverged_epoch=NULL, error=NULL, test=NULL, info=excluded.info",
                (rid, experiment, json.dumps(config, sort_keys=True), "running", now, now, json.dumps(info or {})),
            )

    def log_epoch(self, rid: str, record: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO epochs(run_id, epoch, metrics) VALUES(?,?,?)",
                (rid, int(record["epoch"]), json.dumps(record)),
            )
            db.execute("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), rid))

    def put_artifact(self, rid: str, key: str, value: object) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO artifacts(run_id, key, value) VALUES(?,?,?)", (rid, key, json.dumps(value))
            )

    def artifact(self, rid: str, key: str) -> object | None:
        row = self.db.execute("SELECT value FROM artifacts WHERE run_id=? AND key=?", (rid, key)).fetchone()
        return json.loads(row["value"]) if row else None

    def finish_run(self, rid: str, status: str, test: dict | None = None, diverged_epoch: int | None = None,
                   error: str | None = None, info: dict | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET status=?, test=?, diverged_epoch=?, error=?, updated=?,"
                " info=COALESCE(?, info) WHERE run_id=?",
                (status, json.dumps(test or {}), diverged_epoch, error, time.time(),
                 json.dumps(info) if info is not None else None, rid),
            )

    def runs(self, experiment: str | None = None) -> list[dict]:
        """All runs (optionally of one experiment) as dicts with decoded JSON fields."""
        query, args = "SELECT * FROM runs", ()
        if experiment:
            query, args = query + " WHERE experiment=?", (experiment,)
        out = []
        for row in self.db.execute(query + " ORDER BY created", args):
            run = dict(row)
            for key in ("config", "test", "info"):
                run[key] = json.loads(run[key]) if run[key] else {}
            out.append(run)
        return out

    def history(self, rid: str) -> list[dict]:
        rows = self.db.execute("SELECT metrics FROM epochs WHERE run_id=? ORDER BY epoch", (rid,))
        return [json.loads(r["metrics"]) for r in rows]
