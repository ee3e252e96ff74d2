"""Test support: a real inbox that records what actors tell it.

Tests may use threading primitives; the engine (``actors/``, ``messages/``)
may not.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


class Recorder:
    """Collects every message told to it; tests wait on conditions with deadlines."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.messages: list[Any] = []

    def tell(self, message: Any) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def of(self, kind: type[T]) -> list[T]:
        with self._cond:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"condition not met within {timeout}s; got {self.messages[-20:]!r}"
                    )
                self._cond.wait(remaining)

    def wait_for_kind(self, kind: type[T], count: int = 1, timeout: float = 10.0) -> list[T]:
        self.wait_for(lambda ms: sum(isinstance(m, kind) for m in ms) >= count, timeout)
        return self.of(kind)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true or fail at the deadline (for state owned elsewhere)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {what}")
        threading.Event().wait(delay)
        delay = min(delay * 2, 0.05)


def only_when_selected(request: pytest.FixtureRequest) -> None:
    """``slow`` runs are not part of the default run: they need ``-m slow``."""
    if "slow" not in (request.config.getoption("markexpr") or "").replace("not slow", ""):
        pytest.skip("a long run: select it with -m slow")


def kitesaga_command() -> list[str]:
    """The installed ``kitesaga`` console script (or ``python -m actors.cli`` without one)."""
    script = Path(sys.executable).with_name("kitesaga")
    return [str(script)] if script.exists() else [sys.executable, "-m", "actors.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``KITESAGA_`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITESAGA_")}
    env.update(extra)
    return env
