"""The broker margin pre-check of an entry (a Kite gateway mixin)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from actors.kite._calls import Failure
from actors.kite._convert import BrokerReplyError, margin_params, rupees
from messages import CheckMargins, EndpointClass, MarginsChecked, Money, Price, Priority

if TYPE_CHECKING:
    from actors.config._schema import RateLimitsConfig
    from actors.kite._calls import CallError, Continuation
    from messages import Inbox

__all__ = ["MarginCheck"]


class MarginCheck:
    """Mixin: answers CheckMargins from the basket-margins API (the legs together,
    counting open positions) against the equity segment's net margin.

    Contract: MarginsChecked.ok only when both calls succeed and the required
    margin is covered; otherwise the reason names the figures or the failure.
    The first call uses the permit that delivered CheckMargins; the second
    takes its own.
    """

    _prices: Callable[[], Mapping[int, Price]]
    _limits: RateLimitsConfig

    if TYPE_CHECKING:
        def _invoke(self, endpoint: EndpointClass, method: str, kwargs: Mapping[str, Any],
                    args: tuple[Any, ...] = ()) -> tuple[Any, CallError | None]: ...

        def _request(self, endpoint: EndpointClass, priority: Priority, method: str,
                     kwargs: Mapping[str, Any], then: Continuation,
                     args: tuple[Any, ...] = ()) -> None: ...

        def reply_after_publish(self, to: Inbox | None, message: Any) -> None: ...

        def _again(self, message: CheckMargins, attempt: int, priority: Priority) -> None: ...

    def _check_margins(self, message: CheckMargins, attempt: int) -> None:
        lasts = {token: price.last for token, price in self._prices().items()}
        params = margin_params(message.legs, lasts)
        basket, error = self._invoke(EndpointClass.OTHER, "basket_order_margins",
                                     {"params": params, "consider_positions": True})
        if error is not None and error.failure is Failure.THROTTLED \
                and attempt < self._limits.retries_on_429:
            self._again(message, attempt + 1, Priority.ENTRY)
            return
        if error is not None:
            self._margins_answer(message, Money(0), Money(0), f"margin check failed: "
                                 f"{error.message}")
            return
        try:
            required = rupees(basket["final"]["total"], "final.total")
        except (KeyError, TypeError, BrokerReplyError) as exc:
            self._margins_answer(message, Money(0), Money(0), f"margin reply unreadable: {exc}")
            return

        def got(margins: Any, err: CallError | None) -> None:
            if err is not None:
                self._margins_answer(message, required, Money(0),
                                     f"margin check failed: {err.message}")
                return
            try:
                available = rupees(margins["net"], "equity.net")
            except (KeyError, TypeError, BrokerReplyError) as exc:
                self._margins_answer(message, required, Money(0), f"margins unreadable: {exc}")
                return
            short = required.paise > available.paise
            self._margins_answer(message, required, available, (
                f"margin short: required {required} > available {available}" if short else ""))

        self._request(EndpointClass.OTHER, Priority.ENTRY, "margins", {"segment": "equity"}, got)

    def _margins_answer(self, message: CheckMargins, required: Money, available: Money,
                        reason: str) -> None:
        self.reply_after_publish(message.reply_to, MarginsChecked(
            message.saga_id, not reason, required, available, reason))

