"""Serialisation of every message to JSON-ready dicts and back.

``to_dict`` writes ``{"type": <class name>, <field>: <value>, ...}``;
``from_dict`` rebuilds the message, so it is validated again on the way in.
``reply_to`` addresses are not data and are never serialised.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from messages import _commands, _control, _events, _live, _orders, _sync, _values

__all__ = ["encode_scalar", "from_dict", "to_dict"]

_MODULES = (_values, _orders, _commands, _events, _live, _sync, _control)
_REGISTRY: dict[str, type] = {
    name: obj
    for module in _MODULES
    for name, obj in vars(module).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
    and obj.__module__ == module.__name__
}
_HINTS: dict[type, dict[str, Any]] = {}
_TRANSIENT = frozenset({"reply_to", "then", "then_to"})


def encode_scalar(value: Any) -> Any:
    """A value as JSON data: Money as paise, an Enum as its value, a date or time as
    ISO-8601 text, a Decimal as text; anything else is returned unchanged."""
    if isinstance(value, _values.Money):
        return value.paise
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, _values.Money):
        return value.paise
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, frozenset, list)):
        items = [_encode(v) for v in value]
        return sorted(items) if isinstance(value, frozenset) else items
    return encode_scalar(value)


def to_dict(message: Any) -> dict[str, Any]:
    """Encode a message (or value) as a JSON-ready dict with its type name."""
    out: dict[str, Any] = {"type": type(message).__name__}
    for f in dataclasses.fields(message):
        if f.name not in _TRANSIENT:
            out[f.name] = _encode(getattr(message, f.name))
    return out


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        module = vars(__import__(cls.__module__, fromlist=["_"]))
        hints = typing.get_type_hints(cls, globalns=module)
        _HINTS[cls] = hints
    return hints


def _decode(hint: Any, value: Any, field: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _decode(args[0], value, field)
    if origin in (tuple, frozenset):
        if not isinstance(value, list):
            raise ValueError(f"{field}: must be a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        items = [_decode(inner, v, field) for v in value]
        return tuple(items) if origin is tuple else frozenset(items)
    if hint is _values.Money:
        return _values.Money(value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is date:
        return date.fromisoformat(value)
    if hint is time:
        return time.fromisoformat(value)
    if hint is Decimal:
        return Decimal(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(value)
    return value


def from_dict(data: dict[str, Any], reply_to: Any = None) -> Any:
    """Rebuild (and so re-validate) a message from :func:`to_dict` output.

    ``reply_to``, when given, becomes the message's reply address (if it has one).
    Raises ValueError naming the field for an unknown type or a bad value.
    """
    if not isinstance(data, dict):
        raise ValueError(f"message: must be a dict, got {data!r}")
    name = data.get("type")
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"type: unknown message type {name!r}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in _TRANSIENT or f.name not in data:
            continue
        try:
            kwargs[f.name] = _decode(hints[f.name], data[f.name], f.name)
        except (TypeError, KeyError, ValueError) as exc:
            if isinstance(exc, ValueError) and str(exc).startswith(f.name):
                raise
            raise ValueError(f"{f.name}: cannot decode {data[f.name]!r}: {exc}") from None
    if reply_to is not None and "reply_to" in {f.name for f in dataclasses.fields(cls)}:
        kwargs["reply_to"] = reply_to
    return cls(**kwargs)
