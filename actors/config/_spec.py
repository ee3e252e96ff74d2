"""What the loader and the docs know about a configuration key beyond its type."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["Bound", "KeySpec"]

Bound = int | float | Decimal


@dataclass(frozen=True, slots=True)
class KeySpec:
    """What the loader and the docs know about one key beyond its type.

    Contract: ``doc`` is the key's one-line meaning. ``gt``/``ge``/``lt``/``le``
    bound a number (or each number in a tuple); ``choices`` restricts a string
    (or each string in a tuple); ``nonempty`` forbids an empty string or tuple.
    ``None`` (a disabled Optional key) is exempt from all of them.
    """

    doc: str = ""
    gt: Bound | None = None
    ge: Bound | None = None
    lt: Bound | None = None
    le: Bound | None = None
    choices: tuple[str, ...] = ()
    nonempty: bool = False


def _m(doc: str, **rule: Any) -> dict[str, KeySpec]:
    """A field's metadata: its :class:`KeySpec`."""
    return {"spec": KeySpec(doc, **rule)}


_PCT: dict[str, Any] = {"ge": 0, "le": 100}  # a percentage of something
_RATIO: dict[str, Any] = {"ge": 0, "le": 1}  # a share of orders
_POS: dict[str, Any] = {"gt": 0}
