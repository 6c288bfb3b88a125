"""User-facing errors.

Everything a user can get wrong (a name, a spec, a config key, a missing file)
raises an :class:`ActlabError`; the CLI prints its message on one line and exits
with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class ActlabError(Exception):
    """A mistake in user input, reported as one clear line."""


class UnknownNameError(ActlabError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


class SpecError(ActlabError, ValueError):
    """A malformed activation spec or expression, with the position of the fault."""


class DeviceError(ActlabError, RuntimeError):
    """An input on another device than a module's tensors, with the fix; a RuntimeError too,
    as the torch error it replaces, so that code catching that still catches it."""
