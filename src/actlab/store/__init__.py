"""The SQLite run store."""

from actlab.store.runstore import FINISHED, RunStore, run_id

__all__ = ["FINISHED", "RunStore", "run_id"]
