"""The search state: one SQLite row per unique function, shared by every worker.

The tables live in the run store's database (``<workdir>/actlab.sqlite``, WAL
mode), next to the ``runs`` table:

* ``search_meta``: the settings (JSON) the work directory was initialised with;
* ``search_functions``: one row per class representative with its status
  (``pending``, ``running``, ``done``, ``failed``, ``diverged``), accuracies,
  features (float blobs), the worker holding it and its lease, attempts, error;
  ``queued`` is the order in which the function was asked for (NULL: never);
* ``search_names``: every known name -> its representative, so a result is
  found by any equivalent expression.

Claiming is one ``BEGIN IMMEDIATE`` transaction (pick, mark running with a
lease), so two workers never hold one function. A row stays claimed while its
worker's heartbeat renews the lease; a row whose lease ran out, or whose worker
process is gone on this host, is claimed again. A result is committed in one
transaction and only by the claim that holds the row, so a worker that lost its
claim cannot overwrite the retry's result.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from actlab.errors import ActlabError
from actlab.search.space import DEFAULT_SCHEMAS, SearchSpace, enumerate_space
from actlab.store.lease import lost, worker_id  # noqa: F401 - worker_id: part of this module's API
from actlab.store.runstore import DB_NAME, FINISHED, immediate_transaction

STATUSES = ("pending", "running", "done", "failed", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS search_functions (
    rep TEXT PRIMARY KEY, idx INTEGER UNIQUE NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    queued INTEGER, source TEXT, val_acc REAL, test_acc REAL, val_loss REAL, train_time REAL,
    diverged_epoch INTEGER, outputs BLOB, fisher BLOB, worker TEXT, host TEXT, pid INTEGER,
    lease REAL, heartbeat REAL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, finished INTEGER,
    updated REAL);
CREATE TABLE IF NOT EXISTS search_names (name TEXT PRIMARY KEY, rep TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS search_queue ON search_functions(queued);
"""


class SearchSettings(BaseModel):
    """What a search work directory searches and how each function is trained."""

    model_config = ConfigDict(extra="forbid")

    schemas: list[str] = Field(default_factory=lambda: list(DEFAULT_SCHEMAS))
    equivalence: str = "exact"
    dataset: str = "mnist10k"
    model: str = "cnn"
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0
    max_attempts: int = Field(3, ge=1, description="tries per function before it stays 'failed'")
    lease_s: float = Field(120.0, gt=0, description="a claim not renewed for this long is taken over")
    fisher_batch: int = Field(128, ge=1, description="training examples the Fisher spectrum is taken on")


@dataclass(frozen=True)
class Claim:
    """A function held by one worker; ``attempt`` tells this claim from later ones."""

    rep: str
    idx: int
    worker: str
    attempt: int


@dataclass
class Outcome:
    """What evaluating one function gave."""

    status: str  # done | diverged | failed
    val_acc: float | None = None
    test_acc: float | None = None
    val_loss: float | None = None
    train_time: float = 0.0
    diverged_epoch: int | None = None
    error: str | None = None


class SearchState:
    """The search tables of one work directory. One instance per thread or process."""

    def __init__(self, workdir: str | Path, create: bool = False) -> None:
        self.workdir = Path(workdir)
        self.path = self.workdir / DB_NAME
        if not create and not self.path.exists():
            raise ActlabError(f"{self.workdir} is not a search work directory; run `actlab search init` first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        if create:
            self.db.executescript(_SCHEMA)
        elif not self.db.execute("SELECT 1 FROM sqlite_master WHERE name='search_meta'").fetchone():
            self.db.close()
            raise ActlabError(f"{self.workdir} holds runs but no search; run `actlab search init` there first")
        row = self.db.execute("SELECT value FROM search_meta WHERE key='settings'").fetchone()
        if row is None and not create:
            self.db.close()
            raise ActlabError(f"{self.workdir} has no search state; run `actlab search init` first")
        self.settings = SearchSettings.model_validate_json(row["value"]) if row else None
        self._space: SearchSpace | None = None

    def transaction(self):
        return immediate_transaction(self.db)

    def close(self) -> None:
        self.db.close()

    # -- the space -----------------------------------------------------------------------------

    @classmethod
    def init(cls, workdir: str | Path, settings: SearchSettings) -> SearchState:
        """Enumerate the space into a new work directory; a no-op when it holds these settings."""
        state = cls(workdir, create=True)
        if state.settings is not None:
            if state.settings != settings:
                raise ActlabError(f"{state.workdir} was initialised with other settings "
                                  f"({state.settings.model_dump_json()}); use a new work directory")
            return state
        space = enumerate_space(settings.schemas, settings.equivalence)
        now = time.time()
        with state.transaction() as db:
            db.executemany("INSERT INTO search_functions(rep, idx, outputs, updated) VALUES(?,?,?,?)",
                           [(rep, i, space.outputs[i].numpy().tobytes(), now) for i, rep in enumerate(space.unique)])
            db.executemany("INSERT INTO search_names(name, rep) VALUES(?,?)", space.representative.items())
            db.execute("INSERT INTO search_meta(key, value) VALUES('settings', ?)", (settings.model_dump_json(),))
        (state.workdir / "search_settings.json").write_text(settings.model_dump_json(indent=2))
        state.settings, state._space = settings, space
        return state

    @property
    def space(self) -> SearchSpace:
        """The enumerated space (recomputed from the settings, well under a second)."""
        if self._space is None:
            self._space = enumerate_space(self.settings.schemas, self.settings.equivalence)
        return self._space

    def names(self) -> list[str]:
        """Representatives in index order."""
        return [r["rep"] for r in self.db.execute("SELECT rep FROM search_functions ORDER BY idx")]

    def representative(self, name: str) -> str:
        """The representative of any expression equivalent to a function of the space."""
        row = self.db.execute("SELECT rep FROM search_names WHERE name=?", (name,)).fetchone()
        if row:
            return row["rep"]
        rep = self.space.find(name)
        if rep is None:
            raise ActlabError(f"{name!r} is not equivalent to any finite function of this search space")
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO search_names(name, rep) VALUES(?,?)", (name, rep))
        return rep

    def result(self, name: str) -> dict:
        """The row (status, accuracies, ...) of the class ``name`` falls in, without feature blobs."""
        row = self.db.execute("SELECT * FROM search_functions WHERE rep=?", (self.representative(name),))
        return {k: v for k, v in dict(row.fetchone()).items() if k not in ("outputs", "fisher")}

    def rows(self, statuses: Sequence[str] = STATUSES) -> list[dict]:
        marks = ",".join("?" * len(statuses))
        query = (f"SELECT rep, idx, status, queued, source, val_acc, test_acc, val_loss, train_time, diverged_epoch,"
                 f" worker, attempts, error, finished FROM search_functions WHERE status IN ({marks}) ORDER BY idx")
        return [dict(r) for r in self.db.execute(query, tuple(statuses))]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0) | {"queued": 0}
        for r in self.db.execute("SELECT status, COUNT(*) n, COUNT(queued) q FROM search_functions GROUP BY status"):
            out[r["status"]] = r["n"]
            if r["status"] == "pending":
                out["queued"] = r["q"]
        return out

    # -- the queue -----------------------------------------------------------------------------

    def enqueue(self, names: Sequence[str], source: str) -> int:
        """Ask for the functions of ``names`` (in order); returns how many were newly queued."""
        reps = list(dict.fromkeys(self.representative(n) for n in names))
        with self.transaction() as db:
            top = db.execute("SELECT COALESCE(MAX(queued), 0) FROM search_functions").fetchone()[0]
            added = 0
            for rep in reps:
                cur = db.execute("UPDATE search_functions SET queued=?, source=? WHERE rep=? AND queued IS NULL",
                                 (top + added + 1, source, rep))
                added += cur.rowcount
        return added

    def claim(self, worker: str) -> Claim | None:
        """Atomically take the first queued function that is free, failed with tries left, or abandoned."""
        now, host, s = time.time(), socket.gethostname(), self.settings
        with self.transaction() as db:
            rows = db.execute("SELECT rep, idx, status, host, pid, lease, attempts FROM search_functions"
                              " WHERE queued IS NOT NULL AND status IN ('pending', 'running', 'failed')"
                              " ORDER BY queued").fetchall()
            for r in rows:
                if r["status"] == "running":
                    if not lost(r, now, host):
                        continue
                    if r["attempts"] >= s.max_attempts:
                        db.execute("UPDATE search_functions SET status='failed', error=?, lease=NULL, updated=?,"
                                   " finished=(SELECT COALESCE(MAX(finished), 0) + 1 FROM search_functions)"
                                   " WHERE rep=?", (f"worker lost {r['attempts']} times", now, r["rep"]))
                        continue
                elif r["status"] == "failed" and r["attempts"] >= s.max_attempts:
                    continue
                db.execute("UPDATE search_functions SET status='running', worker=?, host=?, pid=?, lease=?,"
                           " heartbeat=?, attempts=attempts+1, updated=? WHERE rep=?",
                           (worker, host, os.getpid(), now + s.lease_s, now, now, r["rep"]))
                return Claim(r["rep"], r["idx"], worker, r["attempts"] + 1)
        return None

    def heartbeat(self, claim: Claim) -> bool:
        """Renew the lease; False when the claim was lost (taken over after it expired)."""
        now = time.time()
        with self.transaction() as db:
            cur = db.execute("UPDATE search_functions SET lease=?, heartbeat=? WHERE rep=? AND worker=?"
                             " AND attempts=? AND status='running'",
                             (now + self.settings.lease_s, now, claim.rep, claim.worker, claim.attempt))
        return cur.rowcount == 1

    def record(self, claim: Claim, out: Outcome) -> bool:
        """Commit an outcome in one transaction; False (nothing written) if the claim was lost."""
        final = out.status in FINISHED or claim.attempt >= self.settings.max_attempts
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE search_functions SET status=?, val_acc=?, test_acc=?, val_loss=?, train_time=?,"
                " diverged_epoch=?, error=?, lease=NULL, updated=?, finished=CASE WHEN ? THEN"
                " (SELECT COALESCE(MAX(finished), 0) + 1 FROM search_functions) END"
                " WHERE rep=? AND worker=? AND attempts=? AND status='running'",
                (out.status, out.val_acc, out.test_acc, out.val_loss, out.train_time, out.diverged_epoch,
                 out.error, time.time(), final, claim.rep, claim.worker, claim.attempt))
        return cur.rowcount == 1

    def release(self, claim: Claim) -> None:
        """Give a claim back untried (its task was cancelled), without spending an attempt."""
        with self.transaction() as db:
            db.execute("UPDATE search_functions SET status='pending', worker=NULL, lease=NULL,"
                       " attempts=attempts-1, updated=? WHERE rep=? AND worker=? AND attempts=? AND status='running'",
                       (time.time(), claim.rep, claim.worker, claim.attempt))

    def open_work(self) -> int:
        """Queued functions not finished for good: pending, running, or failed with tries left."""
        return self.db.execute(
            "SELECT COUNT(*) FROM search_functions WHERE queued IS NOT NULL AND (status IN ('pending', 'running')"
            " OR (status='failed' AND attempts < ?))", (self.settings.max_attempts,)).fetchone()[0]

    def finished_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM search_functions WHERE finished IS NOT NULL").fetchone()[0]

    # -- features ------------------------------------------------------------------------------

    def missing_fisher(self, names: Sequence[str] | None = None) -> list[str]:
        reps = self.names() if names is None else list(dict.fromkeys(map(self.representative, names)))
        have = {r["rep"] for r in self.db.execute("SELECT rep FROM search_functions WHERE fisher IS NOT NULL")}
        return [r for r in reps if r not in have]

    def put_fisher(self, items: Sequence[tuple[str, np.ndarray]]) -> None:
        with self.transaction() as db:
            db.executemany("UPDATE search_functions SET fisher=? WHERE rep=?",
                           [(np.asarray(f, dtype=np.float64).tobytes(), rep) for rep, f in items])

    def features(self, kind: str, names: Sequence[str] | None = None) -> np.ndarray:
        """``outputs`` (float32 -> float64) or ``fisher`` rows, for ``names`` or all functions in index order."""
        if kind not in ("outputs", "fisher"):
            raise ActlabError(f"feature kind must be 'outputs' or 'fisher', got {kind!r}")
        dtype = np.float32 if kind == "outputs" else np.float64
        blobs = dict(self.db.execute(f"SELECT rep, {kind} FROM search_functions").fetchall())
        reps = self.names() if names is None else [self.representative(n) for n in names]
        missing = [r for r in reps if blobs[r] is None]
        if missing:
            raise ActlabError(f"{len(missing)} functions have no {kind} features yet "
                              f"(e.g. {missing[0]}); run `actlab search features {self.workdir}` first")
        return np.stack([np.frombuffer(blobs[r], dtype=dtype).astype(np.float64) for r in reps])
