"""``kitesaga status | positions | orders | sagas | submit | halt | resume | health``:
the operator's commands to a running engine, over its control socket."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from actors.cli import _control_text as text
from actors.cli._flags import configure
from actors.config import Config
from actors.control import ControlError, NoEngine, request, socket_path

__all__ = ["add_control_parsers", "common_flags"]

_FLAG_KEYS = {"state_dir": "KITESAGA_ENGINE_STATE_DIR"}
SUBMITTED = {"completed": 0, "refused": 1, "compensated": 1, "running": 3, "unanswered": 3}
"""``kitesaga submit``'s exit code per outcome."""


def common_flags(p: argparse.ArgumentParser) -> None:
    """``--config`` and ``--state-dir``, as ``kitesaga run`` takes them."""
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="the engine's state dir (env KITESAGA_STATE_DIR)")


def _quantity(value: str) -> int:
    if not value.strip().isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"QTY must be a positive whole number, got {value!r}")
    return int(value)


def _rupees(value: str) -> str:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be a number of rupees, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of rupees > 0, "
                                         f"got {value!r}")
    return value


def _side(value: str) -> str:
    if value.upper() not in ("BUY", "SELL"):
        raise argparse.ArgumentTypeError(f"must be BUY or SELL, got {value!r}")
    return value.upper()


def add_control_parsers(sub: Any) -> None:
    """Register the control commands and their flags."""
    for name, helptext in (
            ("status", "the running engine: trading state, P&L, cash, sagas, rate limits, "
                       "reconciliation, prices, alerts"),
            ("positions", "open positions with average price, last price and P&L"),
            ("orders", "working orders of the sagas in flight"),
            ("sagas", "the sagas in flight, step by step")):
        p = sub.add_parser(name, help=helptext)
        common_flags(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=_command(name))
    p = sub.add_parser("submit", help="a manual order (strategy 'manual') through the "
                       "engine's checks and sagas; an opposite order of a whole 'manual' "
                       "position closes it")
    p.add_argument("side", type=_side, metavar="BUY|SELL")
    p.add_argument("symbol", metavar="SYMBOL", help="the tradingsymbol, e.g. NIFTY26DEC24000CE")
    p.add_argument("quantity", type=_quantity, metavar="QTY", help="a multiple of the lot size")
    p.add_argument("--price", type=_rupees, metavar="P", help="LIMIT price in rupees "
                   "(default: MARKET)")
    p.add_argument("--exchange", default="NFO", help="default NFO")
    p.add_argument("--product", default="NRML", help="default NRML")
    common_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_command("submit"))
    p = sub.add_parser("halt", help="emergency stop: no new entries, cancel every working "
                       "order; --flatten squares off every position")
    p.add_argument("--flatten", action="store_true", help="also close every open position")
    p.add_argument("--reason", default="kitesaga halt", metavar="TEXT", help="logged and shown")
    common_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_command("halt"))
    p = sub.add_parser("resume", help="trading ACTIVE again (refused while the live start-up "
                       "reconciliation is not clean, unless --force)")
    p.add_argument("--force", action="store_true", help="resume even so")
    common_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_command("resume"))
    p = sub.add_parser("health", help="one line; exit 0 healthy, 1 degraded, 2 down (for cron)")
    common_flags(p)
    p.set_defaults(func=_health)


def _args_of(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if name == "submit":
        return {"side": args.side, "symbol": args.symbol, "quantity": args.quantity,
                "price": args.price, "exchange": args.exchange, "product": args.product}
    if name == "halt":
        return {"flatten": args.flatten, "reason": args.reason}
    if name == "resume":
        return {"force": args.force}
    return {}


def _timeout(name: str, config: Config) -> float:
    """How long the client waits: the engine's own waits, plus ``timeout_s`` to answer."""
    control = config.control
    if name == "halt":
        return 2 * control.timeout_s + control.halt_timeout_s
    if name in ("submit", "resume", "sagas", "orders"):
        return 2 * control.timeout_s
    return control.timeout_s


def _call(args: argparse.Namespace, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    config = configure(args, _FLAG_KEYS)
    return request(socket_path(config), name, arguments, timeout=_timeout(name, config))


_RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "status": text.status, "positions": text.positions, "orders": text.orders,
    "sagas": text.sagas, "submit": text.submitted, "halt": text.halted,
    "resume": text.resumed}


def _exit_code(name: str, result: dict[str, Any]) -> int:
    if name == "submit":
        return SUBMITTED.get(result.get("outcome", ""), 1)
    if name == "halt":
        return 0 if result.get("done") else 1
    return 0


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            result = _call(args, name, _args_of(name, args))
        except ControlError as refused:
            print(f"kitesaga {name}: {refused.message}", file=sys.stderr)
            return refused.exit_code
        if getattr(args, "json", False):
            print(json.dumps(result, indent=2, ensure_ascii=False))
        else:
            print(_RENDER[name](result))
        return _exit_code(name, result)
    return run


def _health(args: argparse.Namespace) -> int:
    """One line for cron; exit 0 healthy, 1 degraded, 2 down (no engine answering, or
    an actor failed)."""
    try:
        result = _call(args, "health", {})
    except NoEngine as none:
        print(f"down: {none.message}")
        return 2
    except ControlError as bad:  # no answer in time (2: down), or an error answer (1)
        print(f"{'down' if bad.exit_code == 2 else 'degraded'}: {bad.message}")
        return 2 if bad.exit_code == 2 else 1
    code = result.get("code")
    print(result.get("line", ""))
    return code if code in (0, 1, 2) else 2
