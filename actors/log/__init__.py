"""Logging for kitesaga: JSON lines in the state dir, secrets never written.

Call :func:`configure_logging` once at startup (with ``config.logging`` and
``state_dir(config)``), then log through :func:`get_logger`. Register any
secret obtained at run time (an access token) with :func:`register_secret`.
"""

from __future__ import annotations

from actors.log._setup import (
    REDACTED,
    SECRET_ENV_VARS,
    configure_logging,
    get_logger,
    redact_secrets,
    register_secret,
)

__all__ = [
    "REDACTED",
    "SECRET_ENV_VARS",
    "configure_logging",
    "get_logger",
    "redact_secrets",
    "register_secret",
]
