"""Field validators shared by every message and value type.

Each validator raises :class:`ValueError` whose text names the field and the
offending value, so a bad message can never be constructed silently.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any


def require_int(field: str, value: Any) -> int:
    """Return ``value`` if it is a real ``int`` (not bool, not float)."""
    if type(value) is not int:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{field}: must be a finite integer, got {value!r}")
        raise ValueError(f"{field}: must be an integer, got {value!r}")
    return value


def require_positive_int(field: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` greater than zero."""
    require_int(field, value)
    if value <= 0:
        raise ValueError(f"{field}: must be > 0, got {value!r}")
    return int(value)


def require_non_negative_int(field: str, value: Any) -> int:
    """Return ``value`` if it is an ``int`` of zero or more."""
    require_int(field, value)
    if value < 0:
        raise ValueError(f"{field}: must be >= 0, got {value!r}")
    return int(value)


def require_text(field: str, value: Any, max_len: int = 64) -> str:
    """Return ``value`` if it is a non-empty string of at most ``max_len``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field}: must be a non-empty string, got {value!r}")
    if len(value) > max_len:
        raise ValueError(f"{field}: longer than {max_len} characters, got {value!r}")
    return value


def require_aware(field: str, value: Any) -> datetime:
    """Return ``value`` if it is a timezone-aware :class:`datetime`."""
    if not isinstance(value, datetime):
        raise ValueError(f"{field}: must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field}: must be timezone-aware, got {value!r}")
    return value


def require_instance(field: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """Return ``value`` if it is an instance of ``kind``."""
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValueError(f"{field}: must be a {name}, got {value!r}")
    return value


def require_enum(field: str, value: Any, enum: type) -> Any:
    """Coerce ``value`` to member of ``enum`` or raise naming the field."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ValueError(f"{field}: must be one of {allowed}, got {value!r}") from None
