"""Claims with leases, shared by the experiment grid and the search.

A worker claims a row in one ``BEGIN IMMEDIATE`` transaction, marking it
``running`` with its id, host, pid and a lease (a deadline). While it works, a
heartbeat thread (with its own connection) renews the lease. A row whose lease
ran out, or whose worker process is gone on this host, is lost and may be
claimed again; a result is written only by the claim that still holds the row
(its worker id and attempt number), so a worker that lost its claim cannot
overwrite the retry's result.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The columns a claimable table carries (added to existing tables by migrate_columns).
LEASE_COLUMNS = {"worker": "TEXT", "host": "TEXT", "pid": "INTEGER", "lease": "REAL", "heartbeat": "REAL",
                 "attempts": "INTEGER NOT NULL DEFAULT 0"}


def worker_id(kind: str = "worker") -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lost(row, now: float, host: str | None = None) -> bool:
    """Whether a ``running`` row's claim is gone: its lease ran out, or its process died on this host."""
    host = host or socket.gethostname()
    return row["lease"] is None or row["lease"] < now or (row["host"] == host and not pid_alive(row["pid"]))


def migrate_columns(db, table: str) -> None:
    """Add the lease columns a table created by an older actlab lacks."""
    have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in LEASE_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


@contextmanager
def heartbeat(renew: Callable[[], bool], interval: float, close: Callable[[], None] | None = None) -> Iterator[None]:
    """Call ``renew`` every ``interval`` seconds from a thread while the body runs; it stops
    early when ``renew`` returns False (the claim was lost). ``renew`` and ``close`` run only in
    that thread, so ``renew`` can open the thread's own database connection and ``close`` close it."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval) and renew():
                pass
        finally:
            if close is not None:
                close()

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (PR_SET_PDEATHSIG), so a worker
    in the middle of a task does not outlive a killed driver; elsewhere a no-op (parent_watch
    still ends the worker between tasks)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # the driver died before the signal was set
        os._exit(1)


def parent_watch() -> Callable[[], bool]:
    """A check a worker process calls between tasks: False once the process that started it is gone,
    so that killing a driver never leaves workers polling forever."""
    parent = os.getppid()
    return lambda: os.getppid() == parent and pid_alive(parent)
