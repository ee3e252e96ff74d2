"""An asyncio event loop on a thread of its own, for the HTTP servers beside the actors
(the Kite simulator, the dashboard)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import structlog

__all__ = ["LoopThread"]

_T = TypeVar("_T")
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class LoopThread:
    """One event loop run by one daemon thread, started and stopped from another thread.

    Contract: :meth:`start` runs ``startup`` on the loop and returns when it has
    finished (its exception is raised here; the caller then calls :meth:`stop`).
    Only one start per instance. :meth:`call` runs a coroutine on the loop and
    waits for its result. :meth:`stop` is idempotent: it runs ``shutdown`` on the
    loop (a timeout or a dead loop is logged as ``<name>_shutdown_incomplete``),
    stops the loop and joins the thread; it returns False when there was nothing
    to stop. The thread blocks SIGINT and SIGTERM: they are the main thread's.
    """

    def __init__(self, name: str, log: structlog.stdlib.BoundLogger) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False
        self._thread: threading.Thread | None = None
        self._log = log

    def start(self, startup: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> None:
        """Start the thread and wait for ``startup()`` to finish on its loop."""
        if self.loop is not None:
            raise RuntimeError(f"{self.name}: already started (one start per instance)")
        loop = asyncio.new_event_loop()
        self.loop = loop
        self._thread = threading.Thread(target=_run, args=(loop,), name=self.name,
                                        daemon=True)
        self._thread.start()
        self.call(startup(), timeout)

    def call(self, coroutine: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coroutine`` on the loop; its result (or exception) within ``timeout``."""
        if self.loop is None:
            raise RuntimeError(f"{self.name}: not started")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, shutdown: Callable[[], Coroutine[Any, Any, None]], timeout: float) -> bool:
        """Run ``shutdown()`` on the loop, stop it and join the thread (idempotent)."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or self.stopped:
            return False
        self.stopped = True
        if loop.is_running():
            try:
                self.call(shutdown(), timeout)
            except (TimeoutError, RuntimeError) as error:
                self._log.warning(f"{self.name}_shutdown_incomplete", error=repr(error))
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        return True


def _run(loop: asyncio.AbstractEventLoop) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)  # signals are the main thread's
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
