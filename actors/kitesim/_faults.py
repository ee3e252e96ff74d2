"""Injected faults: the spec grammar and the simulator's runtime fault state.

Grammar (``--faults``, ``sim.faults``, ``POST /_sim/faults``)::

    spec  := "" | item ("," item)*          # blanks around items, names and values ignored
    item  := name "=" value                 # each name at most once

    latency_ms=N          ms added before every Kite answer (N int >= 0)
    latency_jitter_ms=N   plus uniform 0..N ms more
    error_5xx=R           share R (0..1) of Kite calls answered 503 NetworkException or
                          500 GeneralException (half each); nothing is executed
    burst_429=N           the next N Kite calls are answered 429 whatever the limits
    token_expired=0|1     1: every authenticated call is a 403 TokenException and every
                          issued token is invalidated (log in again after clearing it)
    reject=R              share R of placed orders rejected by the RMS (REJECTED)
    drop_response=R       share R of order placements that ARE placed, but the connection
                          is closed without an answer (the client raises ConnectionError)
    stuck=R               share R of placed orders that stay OPEN PENDING
    stuck_cancel_s=S      a cancelled stuck order is CANCELLED after S wall seconds (2)
    ticker_disconnect=0|1 1: drop every ticker connection once, when set
    ticker_refuse=0|1     1: refuse new ticker connections until cleared
    seed=N                reseed the fault draws (default: market.seed)

Anything else raises ``ValueError`` naming the item and its value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["DEFAULT_STUCK_CANCEL_S", "MAX_LATENCY_MS", "FaultSpec", "FaultState",
           "parse_faults"]

DEFAULT_STUCK_CANCEL_S = 2.0
"""Wall seconds a cancel of a stuck order stays CANCEL PENDING, unless the spec says."""

MAX_LATENCY_MS = 60_000
"""Largest latency (and jitter) a spec may ask for: past the client's timeout anyway."""

_SHARE_503 = 0.5  # of injected 5xx answers; the rest are 500 GeneralException
_RATIOS = ("error_5xx", "reject", "drop_response", "stuck")
_FLAGS = ("token_expired", "ticker_disconnect", "ticker_refuse")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One parsed fault spec; the defaults are "no faults".

    Contract: ratios are in [0, 1], counts and milliseconds are ints >= 0,
    ``seed`` is None unless the spec gave one, ``text`` is the spec as given.
    """

    text: str = ""
    latency_ms: int = 0
    latency_jitter_ms: int = 0
    error_5xx: float = 0.0
    burst_429: int = 0
    token_expired: bool = False
    reject: float = 0.0
    drop_response: float = 0.0
    stuck: float = 0.0
    stuck_cancel_s: float = DEFAULT_STUCK_CANCEL_S
    ticker_disconnect: bool = False
    ticker_refuse: bool = False
    seed: int | None = None


_NAMES = tuple(f.name for f in fields(FaultSpec) if f.name != "text")


def _number(item: str, value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"faults: {item}: must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"faults: {item}: must be finite, got {value!r}")
    return number


def _convert(name: str, value: str) -> Any:
    item = f"{name}={value}"
    number = _number(item, value)
    if name in _RATIOS:
        if not 0 <= number <= 1:
            raise ValueError(f"faults: {item}: {name} is a ratio in [0, 1], got {value!r}")
        return float(number)
    if name == "stuck_cancel_s":
        if number < 0:
            raise ValueError(f"faults: {item}: {name} must be >= 0 seconds, got {value!r}")
        return float(number)
    if number != number.to_integral_value():
        raise ValueError(f"faults: {item}: {name} must be an integer, got {value!r}")
    whole = int(number)
    if name in _FLAGS:
        if whole not in (0, 1):
            raise ValueError(f"faults: {item}: {name} must be 0 or 1, got {value!r}")
        return bool(whole)
    if whole < 0:
        raise ValueError(f"faults: {item}: {name} must be >= 0, got {value!r}")
    if name in ("latency_ms", "latency_jitter_ms") and whole > MAX_LATENCY_MS:
        raise ValueError(f"faults: {item}: {name} must be <= {MAX_LATENCY_MS}, got {value!r}")
    return whole


def parse_faults(spec: str) -> FaultSpec:
    """Parse a fault spec (see the module doc); ``ValueError`` names the bad item."""
    if not isinstance(spec, str):
        raise ValueError(f"faults: must be a string, got {spec!r}")
    values: dict[str, Any] = {}
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            if spec.strip():
                raise ValueError(f"faults: empty item in {spec!r}")
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not value:
            raise ValueError(f"faults: {item!r}: expected name=value")
        if name not in _NAMES:
            raise ValueError(f"faults: {item!r}: unknown fault {name!r} "
                             f"(known: {', '.join(_NAMES)})")
        if name in values:
            raise ValueError(f"faults: {item!r}: {name} given twice")
        values[name] = _convert(name, value)
    return FaultSpec(text=spec.strip(), **values)


class FaultState:
    """The faults in force and the seeded draws that apply them.

    Contract: :meth:`set` replaces the spec (``ValueError`` leaves the old one
    in force), re-arms ``burst_429`` and reseeds when the spec has a seed.
    Draws come from one ``random.Random`` (``default_seed`` unless the spec
    seeds it), so a seed and a sequence of calls reproduce the same faults.
    Owned by the simulator's event-loop thread.
    """

    def __init__(self, spec: str, default_seed: int) -> None:
        self._rng = random.Random(default_seed)
        self.spec = FaultSpec()
        self._burst_left = 0
        self.counts: dict[str, int] = dict.fromkeys(
            ("burst_429", "error_5xx", "rejected", "dropped_responses", "stuck"), 0)
        self.set(spec)

    def set(self, text: str) -> FaultSpec:
        """Put ``text`` in force; returns the parsed spec."""
        spec = parse_faults(text)
        self.spec = spec
        self._burst_left = spec.burst_429
        if spec.seed is not None:
            self._rng = random.Random(spec.seed)
        return spec

    def note(self, fault: str) -> None:
        """Count one firing of ``fault`` (one of the keys of ``counts``)."""
        self.counts[fault] += 1

    def chance(self, ratio: float) -> bool:
        """True with probability ``ratio`` (no draw at all when it is 0)."""
        return ratio > 0 and self._rng.random() < ratio

    def take_burst(self) -> bool:
        """True (and one fewer left) while ``burst_429`` calls remain."""
        if self._burst_left <= 0:
            return False
        self._burst_left -= 1
        self.counts["burst_429"] += 1
        return True

    def server_error(self) -> tuple[int, str] | None:
        """``(status, error_type)`` of an injected 5xx for this call, or None."""
        if not self.chance(self.spec.error_5xx):
            return None
        self.counts["error_5xx"] += 1
        if self._rng.random() < _SHARE_503:
            return 503, "NetworkException"
        return 500, "GeneralException"

    def latency_s(self) -> float:
        """Seconds to hold this answer (0 when no latency is set)."""
        spec = self.spec
        millis = float(spec.latency_ms)
        if spec.latency_jitter_ms:
            millis += self._rng.uniform(0, spec.latency_jitter_ms)
        return millis / 1000

    def stats(self) -> dict[str, Any]:
        """The spec in force and how often each fault fired."""
        return {"spec": self.spec.text, "burst_429_left": self._burst_left, **self.counts}
