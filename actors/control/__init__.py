"""The control socket: ``kitesaga status``, ``positions``, ``orders``, ``sagas``,
``submit``, ``halt``, ``resume`` and ``health`` talk to a running engine over a unix
socket in its state dir (``control.socket_name``, mode 0600: the owner only).

- :func:`start_control` (``engine``, optional alert hook) starts a
  :class:`ControlServer` beside a started engine; ``.stop()`` ends it.
  :func:`check_control` refuses, before an engine starts, a state dir where
  another engine already answers.
- :func:`request` is the client: one JSON request line, one JSON reply line;
  :class:`NoEngine` when nothing answers, :class:`ControlError` (with the exit
  code) when the engine refuses. :func:`stream` is the client of ``trace``
  (event lines, then the result).
- The REPL's introspection commands (``actors``, ``inspect``, ``prices``,
  ``limits``, ``saga``, ``ask``, ``tell``, ``trace``): :data:`READ_ONLY` and
  :data:`DANGEROUS` are the policy of ``ask``/``tell``.
- :func:`daily_report` reads a journal file read-only (no engine needed) for
  ``kitesaga report``.

See docs/operations.md ("Control").
"""

from __future__ import annotations

from actors.control._ask import DANGEROUS, READ_ONLY
from actors.control._commands import MANUAL
from actors.control._protocol import ControlError, NoEngine, request, socket_path, stream
from actors.control._report import DailyReport, Trade, daily_report, read_fills
from actors.control._server import (
    ControlServer,
    ControlStartError,
    check_control,
    start_control,
)
from actors.control._views import Alert, AlertSource

__all__ = ["DANGEROUS", "MANUAL", "READ_ONLY", "Alert", "AlertSource", "ControlError",
           "ControlServer", "ControlStartError", "DailyReport", "NoEngine", "Trade",
           "check_control", "daily_report", "read_fills", "request", "socket_path",
           "start_control", "stream"]
