"""DeliveryActor: the one actor that makes blocking HTTP posts (webhook, Telegram)."""

from __future__ import annotations

import http.client
import json
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlparse

import structlog

from actors._base import EngineActor
from actors._published import Published
from actors.observe._conditions import Alert

__all__ = ["DeliveryActor", "DeliveryBook", "Notice", "Status", "check_url"]

_log = structlog.get_logger("kitesaga.alerts")

Status = Literal["firing", "resolved"]


def check_url(name: str, value: str) -> str:
    """``value`` if it is an http(s) URL with a host; else ValueError naming ``name``."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{name}: must be an http:// or https:// URL with a host, "
                         f"got {value!r}")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class Notice:
    """Announce ``alert``: ``firing`` (new, escalated or repeated) or ``resolved``."""

    status: Status
    alert: Alert

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        a = self.alert
        return {"source": "kitesaga", "status": self.status, "name": a.name, "key": a.key,
                "severity": a.severity.value, "message": a.message,
                "figures": dict(a.figures), "since": a.since.isoformat(),
                "at": a.announced_at.isoformat()}

    def text(self) -> str:
        """The Telegram message."""
        a = self.alert
        head = "RESOLVED" if self.status == "resolved" else a.severity.value.upper()
        return f"[kitesaga {head}] {a.name}{f' {a.key}' if a.key else ''}: {a.message}"


@dataclass(frozen=True, slots=True)
class DeliveryBook:
    """DeliveryActor's published counts: posts answered 2xx (``sent``) and posts that
    failed (``failed``), per channel (``webhook``, ``telegram``)."""

    sent: tuple[tuple[str, int], ...] = ()
    failed: tuple[tuple[str, int], ...] = ()

    def count(self, kind: Literal["sent", "failed"], channel: str) -> int:
        """``sent``/``failed`` posts on ``channel``."""
        rows: tuple[tuple[str, int], ...] = self.sent if kind == "sent" else self.failed
        return dict(rows).get(channel, 0)


class DeliveryActor(EngineActor):
    """Posts every :class:`Notice` to the configured channels, one after another.

    Contract:
    - ``webhook_url``: POST the notice as JSON. ``telegram``: POST
      ``{"chat_id", "text"}`` as JSON to ``<api root>/bot<token>/sendMessage``.
      Either may be None (off).
    - Each post waits at most ``timeout_s``; this actor is the only place the
      engine blocks on an alert's network I/O, so no other actor ever waits.
    - A failure (unreachable, timeout, non-2xx, Telegram's ``ok: false``) is
      logged as ``alert_delivery_failed`` and counted, never raised; the bot
      token never appears in a log line (callers register it as a secret, and
      the URL is never logged).
    """

    def __init__(self, webhook_url: str | None, telegram: tuple[str, str, str] | None,
                 timeout_s: float) -> None:
        super().__init__()
        self._webhook = webhook_url
        self._telegram = telegram  # (api root, bot token, chat id)
        self._timeout = timeout_s
        self._sent: dict[str, int] = {}
        self._failed: dict[str, int] = {}
        self.book: Published[DeliveryBook] = Published(DeliveryBook())

    def receive(self, message: Any) -> Any:
        if isinstance(message, Notice):
            if self._webhook is not None:
                self._post("webhook", self._webhook, message.payload(), message)
            if self._telegram is not None:
                root, token, chat = self._telegram
                self._post("telegram", f"{root}/bot{token}/sendMessage",
                           {"chat_id": chat, "text": message.text()}, message)
            self.book.publish(DeliveryBook(tuple(sorted(self._sent.items())),
                                           tuple(sorted(self._failed.items()))))
        else:
            self.unhandled(message)
        return None

    def _post(self, channel: str, url: str, body: dict[str, Any], notice: Notice) -> None:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "kitesaga-alerts"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                answer = response.read()
            if channel == "telegram" and not _telegram_ok(answer):
                raise ValueError(f"Telegram answered ok=false: {answer[:200]!r}")
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self._failed[channel] = self._failed.get(channel, 0) + 1
            _log.warning("alert_delivery_failed", channel=channel, alert=notice.alert.name,
                         status=notice.status, error=f"{type(exc).__name__}: {exc}")
            return
        self._sent[channel] = self._sent.get(channel, 0) + 1
        _log.debug("alert_delivered", channel=channel, alert=notice.alert.name,
                   status=notice.status)


def _telegram_ok(answer: bytes) -> bool:
    try:
        parsed = json.loads(answer)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("ok") is True
