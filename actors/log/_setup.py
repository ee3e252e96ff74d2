"""Structured JSON-lines logging to a file in the state dir, with secrets redacted.

Both structlog loggers and plain stdlib ``logging`` (pykka, libraries) go
through one :class:`structlog.stdlib.ProcessorFormatter` whose last steps are
:func:`redact_secrets` and a JSON renderer. Nothing is written to the console.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from datetime import date, time
from decimal import Decimal
from enum import Enum
from pathlib import Path, PurePath
from typing import Any
from uuid import UUID

import structlog

__all__ = [
    "REDACTED",
    "SECRET_ENV_VARS",
    "configure_logging",
    "get_logger",
    "redact_secrets",
    "register_secret",
]

REDACTED = "***REDACTED***"
SECRET_ENV_VARS = ("ZERODHA_API_KEY", "ZERODHA_API_SECRET", "ZERODHA_TOKEN_KEY")
# A field whose name contains one of these (ignoring case, "_" and "-") is always redacted.
_SECRET_NAME_PARTS = ("accesstoken", "apisecret", "apikey", "requesttoken", "password",
                      "authorization")

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


def configure_logging(state_dir: Path, level: str, file_name: str) -> Path:
    """Send all logging, as JSON lines, to ``state_dir / file_name``; return that path.

    Creates ``state_dir`` (mode 0700) and the log file (mode 0600) if missing,
    registers the values of ``SECRET_ENV_VARS`` as secrets, and replaces any
    handler a previous call installed, so calling it again (tests, a reload)
    just re-targets the log. Console handlers on the root logger are removed.
    Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``,
    ``event`` and the event's fields; exceptions appear as ``exception`` text.
    """
    number = _level_number(level)
    if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
        raise ValueError(f"logging file_name: must be a plain file name, got {file_name!r}")
    for name in SECRET_ENV_VARS:
        register_secret(os.environ.get(name, ""))
    missing = [d for d in (state_dir, *state_dir.parents) if not d.exists()]
    for directory in reversed(missing):  # each one we create is 0700, whatever the umask
        directory.mkdir(mode=0o700)
        directory.chmod(0o700)
    path = state_dir / file_name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))

    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp")
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.stdlib.add_log_level,
                           structlog.stdlib.ExtraAdder(), stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    redact_secrets,
                    structlog.processors.JSONRenderer()],
    )
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter)
    handler.setLevel(number)

    root = logging.getLogger()
    for old in [*_installed, *root.handlers]:
        is_console = type(old) is logging.StreamHandler and getattr(old, "stream", None) in (
            sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
        if old in _installed or is_console:
            root.removeHandler(old)
            old.close()
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(number)
    logging.captureWarnings(True)

    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars,
                    structlog.stdlib.filter_by_level,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.add_log_level,
                    stamp,
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
