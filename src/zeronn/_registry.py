"""The one name -> object table: every ``get_*`` lookup by name goes through a :class:`Registry`.

A registry is a plain ``dict`` of canonical (lower-case) names, so the public tables
(``ACTIVATIONS``, ``LOSSES``, ``INITIALIZERS``, ``OPTIMIZERS``, ``SCHEDULES``) read and
iterate as before; on top of that it knows its aliases (``"logistic"`` -> ``"sigmoid"``),
looks names up case-insensitively, and raises the one "unknown name" error, which lists
the known names so the message carries its own fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

__all__ = ["Registry", "unknown_name"]

T = TypeVar("T")


def unknown_name(kind: str, name: object, known: Iterable[str]) -> ValueError:
    """The error for a name missing from a registry, listing the known ones (sorted)."""
    return ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")


class Registry(dict[str, T], Generic[T]):
    """Canonical name -> object, with aliases and case-insensitive :meth:`lookup`.

    ``kind`` names what the table holds in error messages (``"unknown activation 'x'"``).
    Keys are stored lower-case; aliases map other spellings onto a key and are not
    listed among the known names (the error shows each object once).
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None,
                 aliases: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.aliases: dict[str, str] = {k.lower(): v.lower() for k, v in (aliases or {}).items()}
        for name, obj in (entries or {}).items():
            self.register(name, obj)

    def register(self, name: str, obj: T) -> T:
        """Adds (or replaces) ``obj`` under ``name`` (stored lower-case) and returns it."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        self[name.lower()] = obj
        return obj

    def key(self, name: object) -> str | None:
        """The canonical key ``name`` stands for (any case, or an alias), else None."""
        if not isinstance(name, str):
            return None
        key = self.aliases.get(name.lower(), name.lower())
        return key if key in self else None

    def lookup(self, name: object) -> T:
        """The object registered under ``name`` (any case, or an alias); else the
        "unknown name" ValueError listing the known names."""
        key = self.key(name)
        if key is None:
            raise self.unknown(name)
        return self[key]

    def unknown(self, name: object) -> ValueError:
        """The error for ``name`` missing from this table."""
        return unknown_name(self.kind, name, self)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {dict.__repr__(self)})"
