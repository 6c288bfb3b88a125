"""The learnable families as the registry knows them, for tests parametrised over every one."""

from __future__ import annotations

from actlab.activations import ACTIVATIONS


def learnable_families() -> list[str]:
    """The name of each learnable family's factory, once (aliases such as ``pau`` left out)."""
    seen, names = set(), []
    for name in ACTIVATIONS.names():
        factory = ACTIVATIONS.get(name)
        if factory.__module__.startswith("actlab.activations.learnable") and factory not in seen:
            seen.add(factory)
            names.append(factory.__name__)
    return names
