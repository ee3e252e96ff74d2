"""Read-only views of the simulated exchange in Kite's shapes: quotes, positions, funds.

Quotes: the market's last price, bid and ask, the day's open/high/low since
the simulator started (``close`` is the instruments dump's ``last_price``, or
the first price seen), a five-level depth around bid and ask (one lot per
level and order), and circuit limits ``CIRCUIT_PCT`` either side of the
close. Positions: net and day are the same (no overnight positions), the
running buy/sell totals of every trade, marked at the last price; realised
P&L is on the matched quantity at the average buy and sell prices.
"""

from __future__ import annotations

from typing import Any

from actors.kitesim._exchange import SimExchange
from actors.kitesim._kite import KiteError, kite_time, rupees
from messages import Instrument, Money, Price

__all__ = ["CIRCUIT_PCT", "DEPTH_LEVELS", "MAX_LTP_INSTRUMENTS", "MAX_QUOTE_INSTRUMENTS",
           "account_margins", "positions", "quotes"]

MAX_QUOTE_INSTRUMENTS = 500
"""Instruments one ``GET /quote`` may ask for (Kite's limit)."""

MAX_LTP_INSTRUMENTS = 1000
"""Instruments one ``GET /quote/ltp`` or ``/quote/ohlc`` may ask for (Kite's limit)."""

DEPTH_LEVELS = 5
"""Levels of market depth on each side, as Kite's full quote."""

CIRCUIT_PCT = 20
"""Circuit limits shown in quotes, % either side of the close (displayed, not enforced)."""

_HUNDRED = 100


def _ohlc(exchange: SimExchange, instrument: Instrument, price: Price) -> list[int]:
    """Open, high, low and close in paise."""
    token = instrument.instrument_token
    day = exchange.day.get(token, [price.last.paise] * 3)
    reference = exchange.instruments.reference_price(token)
    return [*day, reference.paise if reference is not None else day[0]]


def _depth(instrument: Instrument, price: Price) -> dict[str, list[dict[str, Any]]]:
    tick, lot = instrument.tick_size.paise, instrument.lot_size
    sides: dict[str, list[dict[str, Any]]] = {"buy": [], "sell": []}
    for name, best, step in (("buy", price.bid, -tick), ("sell", price.ask, tick)):
        for level in range(DEPTH_LEVELS):
            at = 0 if best is None else max(0, best.paise + level * step)
            sides[name].append({"price": rupees(at), "quantity": lot * (level + 1) if at else 0,
                                "orders": level + 1 if at else 0})
    return sides


def quotes(exchange: SimExchange, keys: list[str], mode: str) -> dict[str, Any]:
    """``/quote`` (mode ``full``), ``/quote/ohlc`` or ``/quote/ltp`` for ``EXCHANGE:SYMBOL``
    keys; unknown instruments are left out, as Kite does."""
    limit = MAX_QUOTE_INSTRUMENTS if mode == "full" else MAX_LTP_INSTRUMENTS
    if len(keys) > limit:
        raise KiteError.input(f"Too many instruments: at most {limit} per call, "
                              f"got {len(keys)}")
    data: dict[str, Any] = {}
    for key in keys:
        market, _, symbol = key.partition(":")
        try:
            instrument = exchange.instruments.by_symbol(market, symbol)
        except ValueError:
            continue
        price = exchange.market.quote(instrument.instrument_token)
        if price is None:
            continue
        token = instrument.instrument_token
        item: dict[str, Any] = {"instrument_token": token, "last_price": rupees(price.last)}
        ohlc = _ohlc(exchange, instrument, price)
        if mode != "ltp":
            item["ohlc"] = dict(zip(("open", "high", "low", "close"), map(rupees, ohlc),
                                    strict=True))
        if mode == "full":
            close = ohlc[3]
            band = close * CIRCUIT_PCT // _HUNDRED
            traded = exchange.volume.get(token, 0)
            item.update({
                "timestamp": kite_time(price.exchange_ts),
                "last_trade_time": kite_time(price.exchange_ts),
                "last_quantity": instrument.lot_size if traded else 0,
                "buy_quantity": instrument.lot_size * DEPTH_LEVELS * (DEPTH_LEVELS + 1) // 2,
                "sell_quantity": instrument.lot_size * DEPTH_LEVELS * (DEPTH_LEVELS + 1) // 2,
                "volume": traded, "average_price": rupees(price.last), "oi": 0,
                "oi_day_high": 0, "oi_day_low": 0,
                "net_change": rupees(price.last.paise - close),
                "lower_circuit_limit": rupees(close - band),
                "upper_circuit_limit": rupees(close + band),
                "depth": _depth(instrument, price)})
        data[key] = item
    return data


def _average(value: int, quantity: int) -> float:
    return rupees((2 * value + quantity) // (2 * quantity)) if quantity else 0.0


def positions(exchange: SimExchange) -> dict[str, list[dict[str, Any]]]:
    """``/portfolio/positions``: ``net`` and ``day`` (identical: nothing is overnight)."""
    rows = []
    for (token, product), (bq, bv, sq, sv) in exchange.books.items():
        instrument = exchange.instruments.get(token)
        quote = exchange.market.quote(instrument.instrument_token)
        last = quote.last.paise if quote is not None else 0
        reference = exchange.instruments.reference_price(instrument.instrument_token)
        quantity = bq - sq
        pnl = sv - bv + quantity * last
        closed = min(bq, sq)
        realised = closed * sv // sq - closed * bv // bq if closed else 0
        average = _average(bv, bq) if quantity > 0 else _average(sv, sq) if quantity < 0 \
            else 0.0
        row = {"tradingsymbol": instrument.tradingsymbol,
               "exchange": instrument.exchange.value,
               "instrument_token": token, "product": product.value,
               "quantity": quantity, "overnight_quantity": 0, "multiplier": 1,
               "average_price": average, "close_price": rupees(reference),
               "last_price": rupees(last), "value": rupees(sv - bv), "pnl": rupees(pnl),
               "m2m": rupees(pnl), "unrealised": rupees(pnl - realised),
               "realised": rupees(realised)}
        for prefix in ("", "day_"):
            row.update({f"{prefix}buy_quantity": bq, f"{prefix}buy_price": _average(bv, bq),
                        f"{prefix}buy_value": rupees(bv), f"{prefix}sell_quantity": sq,
                        f"{prefix}sell_price": _average(sv, sq),
                        f"{prefix}sell_value": rupees(sv)})
        row.update({"buy_m2m": rupees(bv), "sell_m2m": rupees(sv)})
        rows.append(row)
    return {"net": rows, "day": [dict(row) for row in rows]}


def _segment(enabled: bool, cash: Money, opening: Money, blocked: Money,
             available: Money) -> dict[str, Any]:
    return {"enabled": enabled, "net": rupees(available),
            "available": {"adhoc_margin": 0.0, "cash": rupees(cash),
                          "opening_balance": rupees(opening), "live_balance": rupees(available),
                          "collateral": 0.0, "intraday_payin": 0.0},
            "utilised": {"debits": rupees(blocked), "exposure": 0.0, "m2m_realised": 0.0,
                         "m2m_unrealised": 0.0, "option_premium": 0.0, "payout": 0.0,
                         "span": 0.0, "holding_sales": 0.0, "turnover": 0.0,
                         "liquid_collateral": 0.0, "stock_collateral": 0.0, "delivery": 0.0}}


def account_margins(exchange: SimExchange, segment: str | None) -> dict[str, Any]:
    """``/user/margins[/{segment}]``: equity is the paper broker account; commodity is empty."""
    account = exchange.engine.account
    zero = Money(0)
    views = {"equity": _segment(True, account.funds, exchange.initial_cash, account.blocked,
                                account.available),
             "commodity": _segment(False, zero, zero, zero, zero)}
    if segment is None:
        return views
    if segment not in views:
        raise KiteError.input(f"Invalid segment {segment!r}: equity or commodity")
    return views[segment]
