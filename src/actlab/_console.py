"""The rich console used by the CLI: at least 120 columns, so tables stay readable in logs and pipes."""

from __future__ import annotations

from rich.console import Console


def console() -> Console:
    return Console(width=max(Console().width, 120))
