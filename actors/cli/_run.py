"""``kitesaga run``: the main job — paper trading on the simulated market, or live."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import structlog

from actors._system import Engine
from actors.cli._flags import configure
from actors.cli._services import Services
from actors.config import Config, state_dir
from actors.log import configure_logging
from messages import Money

__all__ = ["add_run_parser", "run", "summary"]

_log = structlog.get_logger("kitesaga.cli")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def add_run_parser(sub: Any) -> None:
    """Register ``run`` and its flags."""
    p = sub.add_parser("run", help="trade until Ctrl-C/SIGTERM: paper (the simulated "
                       "market) or live (Kite Connect)")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--mode", metavar="MODE",
                   help="paper (default) or live (needs `kitesaga login`; env ZERODHA_*)")
    p.add_argument("--duration", type=_positive_float, metavar="S",
                   help="stop after S seconds of wall time")
    p.add_argument("--speed", type=_positive_float, metavar="X",
                   help="simulated clock runs X times faster than real time")
    p.add_argument("--seed", type=_int, metavar="N", help="seed for a reproducible market")
    p.add_argument("--state-dir", type=Path, metavar="DIR",
                   help="journal, logs and sockets (env KITESAGA_STATE_DIR)")
    p.add_argument("--summary", type=Path, metavar="PATH", help="write a JSON summary at exit")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.set_defaults(func=run)


_FLAG_KEYS = {"speed": "KITESAGA_MARKET_SPEED", "seed": "KITESAGA_MARKET_SEED",
              "state_dir": "KITESAGA_ENGINE_STATE_DIR", "mode": "KITESAGA_ENGINE_MODE"}


def _configure(args: argparse.Namespace) -> Config:
    """The configuration of this command (see :func:`actors.cli._flags.configure`)."""
    return configure(args, _FLAG_KEYS)


def summary(engine: Engine, drained: bool) -> dict[str, Any]:
    """The run's figures, as written by ``--summary``."""
    port = engine.portfolio_snapshot
    orders = engine.orders_snapshot
    stats = orders.stats
    violations = stats["invariant_violations"] + (1 if port.conservation_error else 0)
    violations += (1 if port.cash < 0 else 0) + orders.in_flight + len(engine.failures())
    positions: dict[str, int] = {}
    for (_, token), view in port.positions.items():
        if view.quantity:
            key = engine.instruments.get(token).key
            positions[key] = positions.get(key, 0) + view.quantity
    return {
        "sagas_started": stats["sagas_started"],
        "sagas_completed": stats["sagas_completed"],
        "sagas_compensated": stats["sagas_compensated"],
        "sagas_refused": stats["sagas_refused"],
        "sagas_in_flight": orders.in_flight,
        "orders": stats["orders"],
        "fills": stats["fills"],
        "exits_decided": stats["exits_decided"],
        "realized_pnl_paise": port.realised,
        "unrealized_pnl_paise": port.unrealised,
        "fees_paise": port.charges,
        "net_pnl_paise": port.net_pnl,
        "cash_paise": port.cash,
        "reserved_paise": port.reserved,
        "initial_cash_paise": port.initial_cash,
        "open_positions": port.open_positions,
        "positions": dict(sorted(positions.items())),
        "unprotected": list(orders.unprotected),
        "conservation_error_paise": port.conservation_error,
        "invariant_violations": violations,
        "actor_failures": [f"{f.actor}: {f.error}" for f in engine.failures()],
        "trading_state": orders.state.value,
        "reconciliation": _reconciliation(engine),
        "drained": drained,
        "wall_seconds": round(engine.uptime(), 3),
        "simulated_seconds": round(engine.sim_elapsed().total_seconds(), 1),
        "simulated_start": engine.start_time.isoformat(),
    }


def _reconciliation(engine: Engine) -> dict[str, Any]:
    """The last reconciliation with the broker (live), as status and summary show it."""
    sync = engine.sync_snapshot
    return {"mode": sync.mode, "startup": sync.startup, "startup_reason": sync.startup_reason,
            "last_round_at": sync.round_at.isoformat() if sync.round_at else None,
            "last_round_ok": sync.round_ok, "last_check_at":
            sync.last_at.isoformat() if sync.last_at else None,
            "checks": sync.summary(), "drifts": len(sync.drifts),
            "resolutions": sync.counts.get("resolutions", 0)}


def _sync_status(engine: Engine) -> str:
    sync = engine.sync_snapshot
    if sync.mode != "live":
        return ""
    at = sync.last_at.strftime("%H:%M:%S") if sync.last_at else "--:--:--"
    result = "pending" if sync.last_at is None else (
        f"{len(sync.drifts)} drift" if sync.drifts else
        "error" if any(c.result == "error" for c in sync.checks.values()) else "ok")
    return f"  sync {at} {result}"


def _status(engine: Engine) -> str:
    port = engine.portfolio_snapshot
    orders = engine.orders_snapshot
    rate = orders.stats["sagas_started"] / max(engine.uptime(), 1e-9)
    now = engine.clock.now().strftime("%H:%M:%S")
    return (f"{now} IST  {orders.state.value:<8} positions {port.open_positions:>3}  "
            f"P&L {Money(port.net_pnl)!s:>14}  fees {Money(port.charges)!s:>11}  "
            f"sagas {orders.stats['sagas_started']:>5} ({rate:5.1f}/s)  "
            f"in flight {orders.in_flight:>3}"
            + (f"  UNPROTECTED {len(orders.unprotected)}" if orders.unprotected else "")
            + _sync_status(engine))


def _table(data: dict[str, Any], out: TextIO) -> None:
    rows = [("sagas started", data["sagas_started"]),
            ("  completed", data["sagas_completed"]),
            ("  compensated", data["sagas_compensated"]),
            ("entries refused", data["sagas_refused"]),
            ("orders", data["orders"]), ("fills", data["fills"]),
            ("open positions", data["open_positions"]),
            ("realised P&L", Money(data["realized_pnl_paise"])),
            ("unrealised P&L", Money(data["unrealized_pnl_paise"])),
            ("fees", Money(data["fees_paise"])),
            ("net P&L", Money(data["net_pnl_paise"])),
            ("cash", Money(data["cash_paise"])),
            ("invariant violations", data["invariant_violations"])]
    out.write("\n")
    for label, value in rows:
        out.write(f"  {label:<22}{value!s:>18}\n")


def run(args: argparse.Namespace) -> int:
    """Run the engine; exit code 0 on a clean stop, 1 on invariant violations, 2 when
    it cannot start (bad input, no valid token, broker unreachable)."""
    config = _configure(args)
    directory = state_dir(config)
    log = config.logging
    log_path = configure_logging(directory, log.level, log.file_name, max_bytes=log.max_bytes,
                                 backups=log.backups, console_level=log.console_level)
    services = Services(config)  # refuses a second engine here, before any recovery
    try:
        engine = Engine(config, listeners=(services.listener,)).start()
        services.attach(engine)  # a control socket it cannot claim stops the engine
    except BaseException:
        services.stop()
        raise
    stop = {"signal": ""}

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    out = sys.stdout
    live = not args.quiet and out.isatty()
    if engine.live is not None:
        print(f"kitesaga LIVE trading at {engine.live.api_root} from "
              f"{engine.start_time:%Y-%m-%d %H:%M} IST; token valid until "
              f"{engine.live.token.expires_at:%Y-%m-%d %H:%M} IST; log {log_path}; "
              "Ctrl-C stops", file=out, flush=True)
    else:
        print(f"kitesaga paper trading from {engine.start_time:%Y-%m-%d %H:%M} IST at "
              f"{config.market.speed:g}x; log {log_path}; Ctrl-C stops", file=out, flush=True)
    if services.addresses():
        print(services.addresses(), file=out, flush=True)
    interval = config.engine.status_interval_s
    deadline = None if args.duration is None else time.monotonic() + args.duration
    next_status = time.monotonic()
    try:
        while not stop["signal"] and (deadline is None or time.monotonic() < deadline):
            if not args.quiet and time.monotonic() >= next_status:
                line = _status(engine)
                out.write(("\r" + line) if live else line + "\n")
                out.flush()
                next_status += interval if live else interval * 10
            wait = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)  # the main thread's pacing of the status line, not synchronisation
    finally:
        _log.info("stopping", reason=stop["signal"] or "duration")
        drained = engine.stop(drain=True)
        services.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    data = summary(engine, drained)
    if args.summary is not None:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(data, indent=2) + "\n")
    _table(data, out)
    return 0 if data["invariant_violations"] == 0 else 1
