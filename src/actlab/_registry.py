"""One registry per family of named things (activations, datasets, models, ...).

Follows timm's ``create_*`` pattern, but an unknown name raises an error that
lists every valid name and the closest match instead of a bare ``KeyError``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from actlab.errors import UnknownNameError

T = TypeVar("T")


def closest(name: str, names: list[str]) -> str | None:
    """The most similar valid name, or ``None`` when nothing is close."""
    hits = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return hits[0] if hits else None


def unknown_name_message(kind: str, name: str, names: list[str]) -> str:
    hint = closest(name, names)
    suggestion = f" Did you mean {hint!r}?" if hint else ""
    return f"unknown {kind} {name!r}.{suggestion} Valid names: {', '.join(sorted(names))}"


class Registry(Generic[T]):
    """A name -> object map whose lookups fail with a helpful message."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            for key in (name, *aliases):
                if key in self._items:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
                self._items[key] = obj
            return obj

        return add

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
