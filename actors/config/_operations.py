"""Configuration of running unattended: the control socket, metrics, alerts, the
dashboard and the logs (see docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.config._spec import _PCT, _POS, _m

__all__ = ["AlertsConfig", "ControlConfig", "DashboardConfig", "LoggingConfig",
           "MetricsConfig", "ReplConfig"]

_PORT = {"ge": 0, "le": 65535}  # 0: any free port (the one bound is logged)
_HOST = {"nonempty": True}


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """The control socket: ``kitesaga status``, ``halt``, ``submit``... talk to the engine."""

    socket_name: str = field(default="control.sock", metadata=_m(
        "the unix socket's name inside the state dir (mode 0600, the owner only)",
        nonempty=True))
    timeout_s: float = field(default=10.0, metadata=_m(
        "how long a control command waits for the engine's answer", **_POS))
    halt_timeout_s: float = field(default=60.0, metadata=_m(
        "how long `kitesaga halt` waits for every cancel (and, with --flatten, every exit) "
        "to be confirmed", **_POS))
    poll_interval_s: float = field(default=0.05, metadata=_m(
        "how often a waiting control command (halt, resume, submit) re-reads the engine's "
        "published state", gt=0, le=1))
    max_request_bytes: int = field(default=65536, metadata=_m(
        "the longest request line the control socket reads; a longer one is refused",
        ge=1024, le=16_777_216))


@dataclass(frozen=True, slots=True)
class ReplConfig:
    """``kitesaga repl``: the introspection console attached to the control socket."""

    history_file: str = field(default="repl-history", metadata=_m(
        "the console's input history, inside the state dir (mode 0600)", nonempty=True))
    audit_file: str = field(default="repl-audit.jsonl", metadata=_m(
        "the audit log of every REPL command and its result, inside the state dir "
        "(JSON lines, mode 0600)", nonempty=True))
    audit_result_chars: int = field(default=2000, metadata=_m(
        "a result longer than this is cut in the audit log", ge=100, le=1_000_000))
    trace_timeout_s: float = field(default=60.0, metadata=_m(
        "the longest a trace() runs when it does not say", **_POS))
    trace_max_events: int = field(default=10_000, metadata=_m(
        "the most events one trace() may ask for", ge=1, le=1_000_000))
    trace_buffer: int = field(default=10_000, metadata=_m(
        "events a trace buffers while the console reads; beyond it the oldest are dropped "
        "(and counted), never an actor slowed", ge=10, le=1_000_000))
    inspect_max_items: int = field(default=200, metadata=_m(
        "items shown per collection by inspect() (the rest are counted)", ge=1,
        le=1_000_000))
    saga_events_max: int = field(default=1000, metadata=_m(
        "journal events shown by saga(id)", ge=1, le=1_000_000))


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Prometheus metrics (prometheus-client), served at /metrics."""

    enabled: bool = field(default=True, metadata=_m("serve /metrics"))
    host: str = field(default="127.0.0.1", metadata=_m(
        "the address /metrics listens on (keep it on loopback)", **_HOST))
    port: int = field(default=9464, metadata=_m(
        "the port /metrics listens on; 0 picks a free one", **_PORT))
    sample_interval_s: float = field(default=1.0, metadata=_m(
        "wall seconds between samples of the actors' published state", **_POS))
    saga_buckets_s: tuple[float, ...] = field(
        default=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        metadata=_m("upper bounds (seconds, increasing) of the saga-duration histogram's "
                    "buckets", nonempty=True, **_POS))


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """Alerts: structured log events, and a webhook POST and/or a Telegram message."""

    check_interval_s: float = field(default=5.0, metadata=_m(
        "wall seconds between evaluations of every alert condition", **_POS))
    repeat_after_s: float = field(default=3600.0, metadata=_m(
        "a condition that stays true is announced again after this long (duplicates are "
        "suppressed meanwhile)", **_POS))
    rss_warning_mb: float = field(default=800.0, metadata=_m(
        "resident memory above this (MB) is a warning", **_POS))
    rss_critical_mb: float = field(default=1024.0, metadata=_m(
        "resident memory above this (MB) is critical", **_POS))
    order_failure_pct: float = field(default=5.0, metadata=_m(
        "rejected or failed orders above this share of orders alerts", **_PCT))
    order_failure_min_orders: int = field(default=20, metadata=_m(
        "orders needed before the failure rate is judged", ge=1))
    token_expiry_warning_min: float = field(default=30.0, metadata=_m(
        "the broker session expiring within this many minutes alerts (live)", **_POS))
    webhook_url: str | None = field(default=None, metadata=_m(
        "POST every alert as JSON to this URL; none: off"))
    telegram_chat_id: str | None = field(default=None, metadata=_m(
        "send every alert to this Telegram chat (the bot token comes from the environment "
        "variable TELEGRAM_BOT_TOKEN); none: off"))
    telegram_api_root: str = field(default="https://api.telegram.org", metadata=_m(
        "the Telegram Bot API's address", **_HOST))
    send_timeout_s: float = field(default=5.0, metadata=_m(
        "how long one webhook or Telegram delivery may take", **_POS))


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """The read-only web dashboard."""

    enabled: bool = field(default=True, metadata=_m("serve the dashboard"))
    host: str = field(default="127.0.0.1", metadata=_m(
        "the address the dashboard listens on (keep it on loopback)", **_HOST))
    port: int = field(default=8780, metadata=_m(
        "the port the dashboard listens on; 0 picks a free one", **_PORT))
    require_token: bool = field(default=False, metadata=_m(
        "ask for the access token in DASHBOARD_TOKEN (as ?token= or a bearer "
        "header)"))
    refresh_s: float = field(default=0.5, metadata=_m(
        "seconds between pushes of the engine's state to the page (at most 1)", gt=0, le=1))
    equity_points: int = field(default=5000, metadata=_m(
        "most points kept for the equity curve", ge=10))


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """Logs."""

    level: str = field(default="INFO", metadata=_m(
        "DEBUG, INFO, WARNING, ERROR or CRITICAL",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")))
    file_name: str = field(default="kitesaga.log", metadata=_m(
        "inside the state dir; JSON lines; a plain file name", nonempty=True))
    max_bytes: int = field(default=20_000_000, metadata=_m(
        "the log file is rotated when it reaches this size", ge=10_000))
    backups: int = field(default=5, metadata=_m(
        "rotated log files kept (kitesaga.log.1 ...)", ge=0, le=1000))
    console_level: str | None = field(default="WARNING", metadata=_m(
        "`kitesaga run` also writes records at this level and above to stderr, readable "
        "(coloured on a TTY, plain otherwise); none: no console logging",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")))
