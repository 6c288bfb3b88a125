"""The run store: an embedded SQLite database in a work directory.

WAL mode and one transaction per epoch, so killing a process at any moment
loses at most the epoch in flight. A run is identified by a hash of its
resolved config; re-running an experiment skips runs that are ``done`` or
``diverged`` and restarts the others from scratch. Runs are queued
(``pending``) and claimed with a lease (:mod:`actlab.store.lease`, as the
search's functions are), so several processes can work on one grid: each run is
trained by one worker at a time, a finished run is never reset, and a run whose
worker died is claimed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from actlab.errors import ActlabError
from actlab.store.lease import lost, migrate_columns

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


@dataclass(frozen=True)
class RunClaim:
    """A run held by one worker; ``attempt`` tells this claim from later ones."""

    run_id: str
    config: dict
    worker: str
    attempt: int


def run_id(config: dict) -> str:
    """A stable id for a resolved run config."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _check_ours(db: sqlite3.Connection, path: Path) -> None:
    """Refuse a database another program wrote: actlab would add its tables to it, or misread them."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
    ours = {"runs", "epochs", "artifacts"}  # and search_* (the search keeps its state here too)
    foreign = [t for t in tables if t not in ours and not t.startswith(("search_", "sqlite_"))]
    if foreign or ("runs" in tables and not {"run_id", "config", "status"} <= columns):
        raise ActlabError(f"{path} is an SQLite database of another program (tables: "
                          f"{', '.join(sorted(tables))}); move it away or use another work directory")


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
        try:
            _check_ours(self.db, path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            with self.transaction() as db:  # stores written before runs were claimed with leases
                migrate_columns(db, "runs")
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise ActlabError(f"{path} is not a usable actlab run store ({exc}); move it away or use another "
                              "work directory") from None
        except ActlabError:
            self.db.close()
            raise

    def transaction(self):
        return immediate_transaction(self.db)

    def close(self) -> None:
        self.db.close()

    def status(self, rid: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE run_id=?", (rid,)).fetchone()
        return row["status"] if row else None

    def start_run(self, rid: str, experiment: str, config: dict, info: dict | None = None,
                  replace: bool = False, keep_epochs: bool = False) -> None:
        """Register a run as running, wiping whatever an interrupted attempt left (its epochs too,
        unless ``keep_epochs``: a run resumed from its last checkpoint); a finished run (``done``,
        ``diverged``) is never reset unless ``replace`` (a derived run computed again)."""
        now = time.time()
        with self.transaction() as db:
            if self._finished(db, rid) and not replace:
                raise ActlabError(f"run {rid} is already finished; it is not started again")
            if not keep_epochs:
                db.execute("DELETE FROM epochs WHERE run_id=?", (rid,))
                db.execute("DELETE FROM artifacts WHERE run_id=?", (rid,))
            db.execute(
                "INSERT INTO runs(run_id, experiment, config, status, created, updated, info)"
                " VALUES(?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET status='running',"
                " updated=excluded.updated, diverged_epoch=NULL, error=NULL, test=NULL, info=excluded.info",
                (rid, experiment, json.dumps(config, sort_keys=True), "running", now, now, json.dumps(info or {})),
            )

    @staticmethod
    def _finished(db: sqlite3.Connection, rid: str) -> bool:
        row = db.execute("SELECT status FROM runs WHERE run_id=?", (rid,)).fetchone()
        return row is not None and row["status"] in FINISHED

    # -- the queue: several processes train one grid ------------------------------------------

    def enqueue(self, experiment: str, configs: list[dict]) -> int:
        """Queue the runs of ``configs`` (in order) that are not finished; a failed run is queued
        again. Returns how many runs are open (pending, running or failed) afterwards."""
        now = time.time()
        with self.transaction() as db:
            for i, config in enumerate(configs):
                rid = run_id(config)
                db.execute("INSERT INTO runs(run_id, experiment, config, status, created, updated, info)"
                           " VALUES(?,?,?,'pending',?,?,'{}') ON CONFLICT(run_id) DO UPDATE SET status='pending',"
                           " attempts=0, updated=excluded.updated WHERE runs.status='failed'",
                           (rid, experiment, json.dumps(config, sort_keys=True), now + i * 1e-6, now))
        return self.open_runs(experiment)

    def open_runs(self, experiment: str) -> int:
        return self.db.execute("SELECT COUNT(*) FROM runs WHERE experiment=? AND status IN"
                               " ('pending', 'running')", (experiment,)).fetchone()[0]

    def counts(self, experiment: str) -> dict[str, int]:
        out = dict.fromkeys(("pending", "running", "done", "diverged", "failed"), 0)
        for r in self.db.execute("SELECT status, COUNT(*) n FROM runs WHERE experiment=? GROUP BY status",
                                 (experiment,)):
            out[r["status"]] = r["n"]
        return out

    def claim(self, experiment: str, worker: str, lease_s: float) -> RunClaim | None:
        """Atomically take the first queued run of ``experiment`` that is pending, or running
        under a claim that was lost; None when there is none."""
        now, host = time.time(), socket.gethostname()
        with self.transaction() as db:
            for r in db.execute("SELECT run_id, config, status, host, pid, lease FROM runs WHERE experiment=?"
                                " AND status IN ('pending', 'running') ORDER BY created", (experiment,)).fetchall():
                if r["status"] == "running" and not lost(r, now, host):
                    continue
                db.execute("UPDATE runs SET status='running', worker=?, host=?, pid=?, lease=?, heartbeat=?,"
                           " attempts=attempts+1, updated=? WHERE run_id=?",
                           (worker, host, os.getpid(), now + lease_s, now, now, r["run_id"]))
                attempt = db.execute("SELECT attempts FROM runs WHERE run_id=?", (r["run_id"],)).fetchone()[0]
                return RunClaim(r["run_id"], json.loads(r["config"]), worker, attempt)
        return None

    def renew(self, claim: RunClaim, lease_s: float) -> bool:
        """Extend the lease; False when the claim was lost (another worker took the run over)."""
        now = time.time()
        with self.transaction() as db:
            cur = db.execute("UPDATE runs SET lease=?, heartbeat=? WHERE run_id=? AND worker=? AND attempts=?"
                             " AND status='running'", (now + lease_s, now, claim.run_id, claim.worker, claim.attempt))
        return cur.rowcount == 1

    def holds(self, claim: RunClaim) -> bool:
        row = self.db.execute("SELECT worker, attempts, status FROM runs WHERE run_id=?", (claim.run_id,)).fetchone()
        return row is not None and (row["worker"], row["attempts"], row["status"]) == (
            claim.worker, claim.attempt, "running")

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
                   error: str | None = None, info: dict | None = None, claim: RunClaim | None = None) -> bool:
        """Store a run's outcome; with ``claim``, only if that claim still holds the run (a worker
        that lost its run cannot overwrite the retry's result). A finished run is never changed."""
        guard, args = "", ()
        if claim is not None:
            guard, args = " AND worker=? AND attempts=? AND status='running'", (claim.worker, claim.attempt)
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE runs SET status=?, test=?, diverged_epoch=?, error=?, updated=?, lease=NULL,"
                " info=COALESCE(?, info) WHERE run_id=? AND status='running'" + guard,
                (status, json.dumps(test or {}), diverged_epoch, error, time.time(),
                 json.dumps(info) if info is not None else None, rid, *args),
            )
        return cur.rowcount == 1

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
