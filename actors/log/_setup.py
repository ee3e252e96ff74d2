"""Structured JSON-lines logging to a rotating file in the state dir, secrets redacted.

Both structlog loggers and plain stdlib ``logging`` (pykka, libraries) go
through :class:`structlog.stdlib.ProcessorFormatter`s whose last steps are
:func:`redact_secrets` and a renderer: JSON for the file (rotated at
``max_bytes``, ``backups`` old files kept), and, when asked for with
``console_level``, a readable console renderer on stderr (coloured when
stderr is a TTY, plain text otherwise).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import MutableMapping
from datetime import date, time
from decimal import Decimal
from enum import Enum
from logging.handlers import RotatingFileHandler
from pathlib import Path, PurePath
from typing import IO, Any
from uuid import UUID

import structlog

from actors.config._operations import LoggingConfig

__all__ = [
    "REDACTED",
    "SECRET_ENV_VARS",
    "configure_logging",
    "get_logger",
    "redact_secrets",
    "register_secret",
]

REDACTED = "***REDACTED***"
SECRET_ENV_VARS = ("ZERODHA_API_KEY", "ZERODHA_API_SECRET", "ZERODHA_TOKEN_KEY",
                   "TELEGRAM_BOT_TOKEN", "DASHBOARD_TOKEN")
# A field whose name contains one of these (ignoring case, "_" and "-") is always redacted.
_SECRET_NAME_PARTS = ("accesstoken", "apisecret", "apikey", "requesttoken", "password",
                      "authorization", "bottoken", "dashboardtoken")
_DEFAULTS = LoggingConfig()

_FIRST_KEYS = ("timestamp", "level", "logger", "event")

# Secret values to scrub. A dict used as an ordered set: one insert is atomic and
# readers take a .copy() (also atomic), so no lock is needed and no update is lost.
_secrets: dict[str, None] = {}
# The file handler this module installed on the root logger, replaced on reconfiguration.
_installed: list[logging.Handler] = []


def register_secret(value: str) -> None:
    """Redact ``value`` (e.g. an access token obtained at login) in every later log line.

    Blank values are ignored: there is nothing to hide and they would match everywhere.
    """
    if not isinstance(value, str):
        raise TypeError(f"register_secret: value must be a str, got {type(value).__name__}")
    if value.strip():
        _secrets[value] = None


def _is_secret_name(key: str) -> bool:
    squashed = re.sub(r"[^a-z]", "", key.lower())
    return any(part in squashed for part in _SECRET_NAME_PARTS)


def _as_text(value: Any) -> str:
    """Text for a value JSON cannot hold, so that it can be scrubbed like any string."""
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal | PurePath | UUID | Enum):
        return str(value)
    return repr(value)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {_scrub(str(k), secrets): REDACTED if _is_secret_name(str(k))
                else _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item, secrets) for item in value]
    return _scrub(_as_text(value), secrets)


def redact_secrets(_logger: Any, _method: str,
                   event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hide secret values and secret-named fields, at any depth.

    Every registered secret (see :func:`register_secret`; the ``SECRET_ENV_VARS``
    are registered by :func:`configure_logging`) is replaced by ``REDACTED`` in
    every string, dict key, nested dict/list/tuple and rendered exception; any
    field named like ``access_token``/``api_secret``/``api_key``/
    ``request_token``/``password``/``authorization`` loses its whole value.
    Values JSON cannot hold are turned into text first, so no ``repr`` escapes.
    Run it after ``format_exc_info`` and just before rendering.
    """
    secrets = sorted(_secrets.copy(), key=len, reverse=True)  # longest first: no partial leak
    scrubbed = _scrub(dict(event_dict), secrets)
    event_dict.clear()
    for key in _FIRST_KEYS:  # a stable, readable order: timestamp level logger event ...
        if key in scrubbed:
            event_dict[key] = scrubbed.pop(key)
    event_dict.update(scrubbed)
    return event_dict


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(str(level).upper())
    if number is None:
        raise ValueError(f"logging level: must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                         f"got {level!r}")
    return number


class _PrivateRotatingFile(RotatingFileHandler):
    """A size-rotated log file whose every generation is created 0600.

    Rolls over once the file has reached ``maxBytes`` (measured with
    ``fstat``, so a record is never formatted twice); with ``backupCount`` 0
    the file is emptied instead of growing without bound.
    """

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return io.TextIOWrapper(io.FileIO(fd, "a"), encoding=self.encoding,
                                errors=self.errors, line_buffering=False)

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 (stdlib name)
        stream = self.stream
        if stream is None:
            stream = self.stream = self._open()
        return self.maxBytes > 0 and os.fstat(stream.fileno()).st_size >= self.maxBytes

    def doRollover(self) -> None:  # noqa: N802 (stdlib name)
        if self.backupCount > 0:
            super().doRollover()
            return
        if self.stream is not None:
            self.stream.close()
        os.close(os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        self.stream = self._open()


def _check_size(max_bytes: int, backups: int) -> None:
    if type(max_bytes) is not int or max_bytes < 1:
        raise ValueError(f"logging max_bytes: must be an integer >= 1, got {max_bytes!r}")
    if type(backups) is not int or backups < 0:
        raise ValueError(f"logging backups: must be an integer >= 0, got {backups!r}")


def _make_dirs(state_dir: Path) -> None:
    missing = [d for d in (state_dir, *state_dir.parents) if not d.exists()]
    for directory in reversed(missing):  # each one we create is 0700, whatever the umask
        directory.mkdir(mode=0o700)
        directory.chmod(0o700)


def _formatter(renderer: Any) -> logging.Formatter:
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level,
                           structlog.stdlib.ExtraAdder(), stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    redact_secrets,
                    renderer],
    )


def _console(level: str, stream: IO[str] | None) -> logging.Handler:
    """A readable handler on ``stream`` (stderr): coloured on a TTY, plain otherwise."""
    target = sys.stderr if stream is None else stream
    is_tty = bool(getattr(target, "isatty", lambda: False)())
    handler = logging.StreamHandler(target)
    handler.setFormatter(_formatter(structlog.dev.ConsoleRenderer(
        colors=is_tty, exception_formatter=structlog.dev.plain_traceback)))
    handler.setLevel(_level_number(level))
    return handler


def configure_logging(state_dir: Path, level: str, file_name: str, *,
                      max_bytes: int = _DEFAULTS.max_bytes,
                      backups: int = _DEFAULTS.backups,
                      console_level: str | None = None,
                      console_stream: IO[str] | None = None) -> Path:
    """Send all logging, as JSON lines, to ``state_dir / file_name``; return that path.

    Creates ``state_dir`` (mode 0700) and the log file (mode 0600, every
    rotated generation too) if missing, registers the values of
    ``SECRET_ENV_VARS`` as secrets, and replaces any handler a previous call
    installed, so calling it again (tests, a reload) just re-targets the log.
    The file is rotated once it reaches ``max_bytes`` (``file_name.1`` ...
    ``file_name.<backups>`` are kept; with ``backups`` 0 it is emptied).
    Console handlers on the root logger are removed; with ``console_level``
    (a level name; None: no console) records at or above it are also written
    to ``console_stream`` (default stderr) by a readable renderer, coloured
    when that stream is a TTY, plain otherwise, secrets redacted alike.
    Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
    ``event`` and the event's fields; exceptions appear as ``exception`` text.
    """
    number = _level_number(level)
    if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
        raise ValueError(f"logging file_name: must be a plain file name, got {file_name!r}")
    _check_size(max_bytes, backups)
    console = None if console_level is None else _console(console_level, console_stream)
    for name in SECRET_ENV_VARS:
        register_secret(os.environ.get(name, ""))
    _make_dirs(state_dir)
    path = state_dir / file_name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))

    handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups,
                                   encoding="utf-8")
    handler.setFormatter(_formatter(structlog.processors.JSONRenderer()))
    handler.setLevel(number)
    handlers: list[logging.Handler] = [handler] if console is None else [handler, console]

    root = logging.getLogger()
    for old in [*_installed, *root.handlers]:
        is_console = type(old) is logging.StreamHandler and getattr(old, "stream", None) in (
            sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        if old in _installed or is_console:
            root.removeHandler(old)
            old.close()
    _installed[:] = handlers
    for new in handlers:
        root.addHandler(new)
    root.setLevel(number)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.stdlib.filter_by_level,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                    structlog.processors.StackInfoRenderer(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # a later configure_logging must take effect
    )
    return path


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name`` (use the module's ``__name__``)."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
