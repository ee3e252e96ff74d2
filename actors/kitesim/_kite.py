"""Kite Connect v3 wire conventions shared by the simulator's modules.

Errors are :class:`KiteError` (an error type and an HTTP status, answered in
Kite's envelope by the HTTP layer); money crosses the wire as float rupees
converted from integer paise at the boundary only; timestamps are naive IST
strings ``YYYY-MM-DD HH:MM:SS``. The ``field_*`` parsers read the strings
kiteconnect sends (form fields and query values) or the values of a JSON body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from actors.market import IST
from messages import Money

__all__ = [
    "TIMESTAMP_FORMAT",
    "KiteError",
    "field_int",
    "field_money",
    "field_str",
    "kite_time",
    "rupees",
]

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
"""Kite's timestamp format: naive IST, exactly 19 characters."""

_HTTP_FOR = {"InputException": 400, "OrderException": 400, "TokenException": 403,
             "PermissionException": 403, "GeneralException": 400, "DataException": 502,
             "NetworkException": 503, "MarginException": 400}


class KiteError(Exception):
    """An error Kite would answer: ``error_type`` (the client's exception class
    name) and ``status`` (the HTTP code; by default the one Kite uses for that type).

    Contract: ``str(error)`` is the message sent to the client.
    """

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else _HTTP_FOR.get(error_type, 400)

    @classmethod
    def input(cls, message: str) -> KiteError:
        """A 400 InputException."""
        return cls("InputException", message)

    @classmethod
    def order(cls, message: str) -> KiteError:
        """A 400 OrderException."""
        return cls("OrderException", message)

    @classmethod
    def not_found(cls, message: str) -> KiteError:
        """A 404 GeneralException (unknown route or id)."""
        return cls("GeneralException", message, 404)


def rupees(paise: int | Money | None) -> float:
    """Integer paise as the float rupees Kite sends (None -> 0.0)."""
    if paise is None:
        return 0.0
    amount = paise.paise if isinstance(paise, Money) else paise
    return float(Decimal(amount).scaleb(-2))


def kite_time(moment: datetime | None) -> str | None:
    """An aware datetime as Kite's naive IST string (None stays None)."""
    return None if moment is None else moment.astimezone(IST).strftime(TIMESTAMP_FORMAT)


def field_str(fields: Mapping[str, Any], name: str, *, required: bool = True,
              default: str = "") -> str:
    """A text field, stripped; a required one must be non-empty."""
    raw = fields.get(name)
    text = "" if raw is None else str(raw).strip()
    if not text:
        if required:
            raise KiteError.input(f"Missing or empty field `{name}`")
        return default
    return text


def field_int(fields: Mapping[str, Any], name: str, *, required: bool = True,
              default: int | None = None) -> int | None:
    """An integer field (``"65"``, ``65``; ``"65.0"`` too, as clients send floats)."""
    text = field_str(fields, name, required=required)
    if not text:
        return default
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise KiteError.input(f"Invalid `{name}`: must be an integer, got {text!r}") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise KiteError.input(f"Invalid `{name}`: must be an integer, got {text!r}")
    return int(number)


def field_money(fields: Mapping[str, Any], name: str, *, required: bool = False) -> Money | None:
    """A price in rupees -> Money (None when absent or zero); must be >= 0."""
    text = field_str(fields, name, required=required)
    if not text:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise KiteError.input(f"Invalid `{name}`: must be a number, got {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise KiteError.input(f"Invalid `{name}`: must be a finite number >= 0, got {text!r}")
    money = Money.from_rupees(amount, name)
    return money if money.paise > 0 else None
