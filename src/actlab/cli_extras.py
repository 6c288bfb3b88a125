"""Subcommands contributed by the annealing, compression and search parts."""

from __future__ import annotations

COMMANDS: list = []
