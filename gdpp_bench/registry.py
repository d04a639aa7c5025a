"""A small generic name -> entry registry, filled by decorators."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from gdpp_bench.errors import UserError

T = TypeVar("T")
V = TypeVar("V")


class Registry(Generic[T]):
    """Maps names to entries and what each entry declares about itself (`meta`: a metric's values
    and their direction, a term's host synchronisation, ...); `get` on an unknown name raises a
    UserError listing the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = entry
            self._meta[name] = meta
            return entry

        return add

    def unregister(self, name: str) -> None:
        """Remove an entry (a plug-in's or a test's); unknown names are ignored."""
        self._entries.pop(name, None)
        self._meta.pop(name, None)

    def declared(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, meta) of every entry, in the order they were registered."""
        return list(self._meta.items())

    def meta(self, name: str) -> dict[str, Any]:
        """What `name` declared when it was registered ({} if nothing)."""
        self.get(name)
        return self._meta.get(name, {})

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UserError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class DeclaredView(Mapping[str, V]):
    """A live mapping built from what a registry's entries declared: `table(declared)` turns the
    (name, meta) pairs, in registration order, into the mapping. Rebuilt on each access, so an
    entry registered later (a plug-in's) appears at once."""

    def __init__(
        self, registry: Registry[Any], table: Callable[[list[tuple[str, dict[str, Any]]]], dict[str, V]]
    ) -> None:
        self.registry, self.table = registry, table

    def __getitem__(self, key: str) -> V:
        return self.table(self.registry.declared())[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table(self.registry.declared()))

    def __len__(self) -> int:
        return len(self.table(self.registry.declared()))
