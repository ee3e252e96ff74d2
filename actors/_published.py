"""Immutable snapshots that an actor publishes for readers on other threads."""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Published"]


class Published(Generic[T]):
    """A one-writer cell holding the latest immutable snapshot of an actor's state.

    Contract: only the owning actor calls :meth:`publish`, always with an
    immutable value; any thread may call :meth:`latest`. Replacing a reference
    is atomic in CPython, so readers never see a half-written state and no
    lock is needed (a reader that must *change* state sends a message).
    """

    __slots__ = ("_value",)

    def __init__(self, initial: T) -> None:
        self._value = initial

    def publish(self, value: T) -> None:
        """Replace the snapshot (owner only)."""
        self._value = value

    def latest(self) -> T:
        """The most recently published snapshot."""
        return self._value
