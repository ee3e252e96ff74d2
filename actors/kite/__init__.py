"""Kite Connect: the live gateway, the live price feed, the session and the token store.

* :class:`KiteGatewayActor` - PaperBrokerActor's message set over ``kiteconnect``;
  every REST call on a RateLimitActor permit.
* :class:`LiveFeedActor` - KiteTicker streaming (:class:`KiteStream`) with REST
  polling while the ticker is down.
* :class:`LiveSession` - what live mode reads before its actors start.
* :class:`TokenStore` and friends - the encrypted access token (``kitesaga login``).
"""

from actors.kite._feed import LiveFeedActor
from actors.kite._gateway import GatewaySnapshot, KiteGatewayActor
from actors.kite._session import LiveSession, LiveStartError, watch_function
from actors.kite._stream import (
    KiteStream,
    OrderUpdateFrame,
    TickerConnected,
    TickerDisconnected,
)
from actors.kite._token import (
    Credentials,
    StoredToken,
    TokenError,
    TokenStatus,
    TokenStore,
    token_expiry,
    valid_access_token,
)

__all__ = [
    "Credentials",
    "GatewaySnapshot",
    "KiteGatewayActor",
    "KiteStream",
    "LiveFeedActor",
    "LiveSession",
    "LiveStartError",
    "OrderUpdateFrame",
    "StoredToken",
    "TickerConnected",
    "TickerDisconnected",
    "TokenError",
    "TokenStatus",
    "TokenStore",
    "token_expiry",
    "valid_access_token",
    "watch_function",
]
