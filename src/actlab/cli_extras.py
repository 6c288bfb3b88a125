"""Subcommands contributed by the annealing, compression and search parts."""

from __future__ import annotations

from actlab.annealing.cli import add_plot_command
from actlab.compress.cli import add_compress_command

COMMANDS: list = [add_plot_command, add_compress_command]
from actlab.search.cli import add_search_command; COMMANDS.append(add_search_command)  # noqa: E402,E702
