"""KiteTicker's binary packets, encoded exactly as ``KiteTicker._parse_binary`` decodes them.

Big-endian: a frame is a uint16 packet count, then per packet a uint16 length
and the packet. The length says the mode: 8 ltp, 28 index quote, 32 index full,
44 quote, 184 full (quote + last trade time, oi, oi high, oi low, exchange
timestamp, then 5 bids and 5 asks of 12 bytes). Prices are integers scaled by
:func:`price_scale` for the segment in the token's low byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["MODES", "PacketQuote", "encode_frame", "encode_packet", "price_scale"]

MODES: Final = ("ltp", "quote", "full")
_UINT32_MAX: Final = 0xFFFFFFFF
_DEPTH_LEVELS: Final = 5

_LTP = struct.Struct(">II")
_INDEX_QUOTE = struct.Struct(">IIIIIIi")  # token ltp high low open close change
_INDEX_TS = struct.Struct(">I")  # index full: + exchange timestamp
_QUOTE = struct.Struct(">11I")  # token ltp last_qty avg volume buy_qty sell_qty open high low close
_FULL_EXTRA = struct.Struct(">5I")  # last trade time, oi, oi high, oi low, exchange timestamp
_DEPTH = struct.Struct(">IIH2x")  # quantity, price, orders, padding
_EMPTY_LEVEL: Final = (0, 0, 0)


def price_scale(token: int) -> int:
    """Integer that turns paise into the wire value KiteTicker divides for ``token``'s segment.

    KiteTicker reads the segment from ``token & 0xff``: currency (3) divides by
    1e7, bcd (6) and nco (12) by 1e4, all others by 100 (paise).
    """
    segment = token & 0xFF  # KiteTicker.EXCHANGE_MAP: cds 3, bcd 6, nco 12
    return 100_000 if segment == 3 else 100 if segment in (6, 12) else 1


@dataclass(frozen=True, slots=True)
class PacketQuote:
    """Everything one full packet carries; prices in paise, times in epoch seconds.

    ``bids``/``asks`` are up to five ``(quantity, price_paise, orders)`` levels.
    """

    token: int
    last: int
    exchange_ts: int
    open: int = 0
    high: int = 0
    low: int = 0
    close: int = 0
    last_qty: int = 0
    average: int = 0
    volume: int = 0
    buy_qty: int = 0
    sell_qty: int = 0
    last_trade_ts: int = 0
    oi: int = 0
    oi_high: int = 0
    oi_low: int = 0
    bids: tuple[tuple[int, int, int], ...] = ()
    asks: tuple[tuple[int, int, int], ...] = ()


def encode_packet(quote: PacketQuote, mode: str, index: bool = False) -> bytes:
    """One packet: ltp 8 bytes; quote 44 (index 28); full 184 (index 32).

    ``ValueError`` if ``mode`` is unknown or a value does not fit its field.
    """
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {mode!r}")
    scale = price_scale(quote.token)

    def px(paise: int) -> int:
        return paise * scale

    try:
        if mode == "ltp":
            return _LTP.pack(quote.token, px(quote.last))
        if index:
            packet = _INDEX_QUOTE.pack(quote.token, px(quote.last), px(quote.high),
                                       px(quote.low), px(quote.open), px(quote.close),
                                       px(quote.last - quote.close) if quote.close else 0)
            if mode == "quote":
                return packet
            return packet + _INDEX_TS.pack(quote.exchange_ts)
        packet = _QUOTE.pack(quote.token, px(quote.last), quote.last_qty, px(quote.average),
                             quote.volume, quote.buy_qty, quote.sell_qty, px(quote.open),
                             px(quote.high), px(quote.low), px(quote.close))
        if mode == "quote":
            return packet
        levels = [*_five(quote.bids), *_five(quote.asks)]
        depth = b"".join(_DEPTH.pack(qty, px(price), orders) for qty, price, orders in levels)
        return packet + _FULL_EXTRA.pack(quote.last_trade_ts, quote.oi, quote.oi_high,
                                          quote.oi_low, quote.exchange_ts) + depth
    except struct.error as exc:
        raise ValueError(f"token {quote.token}: value does not fit the packet: {exc}") from None


def _five(levels: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    return [*levels[:_DEPTH_LEVELS], *[_EMPTY_LEVEL] * (_DEPTH_LEVELS - len(levels))]


def encode_frame(packets: Sequence[bytes]) -> bytes:
    """A binary frame: uint16 packet count, then uint16 length + packet for each."""
    return struct.pack(">H", len(packets)) + b"".join(
        struct.pack(">H", len(packet)) + packet for packet in packets)
