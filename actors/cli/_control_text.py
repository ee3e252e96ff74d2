"""The control commands' human-readable output (``--json`` prints the replies as they are)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from messages import Money

__all__ = ["halted", "orders", "positions", "resumed", "sagas", "status", "submitted",
           "table"]


def _money(paise: int | None) -> str:
    return "-" if paise is None else str(Money(paise))


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows under a header, each column as wide as its widest cell; numbers (and
    money) right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(not isinstance(row[i], str) or row[i].lstrip("-").startswith("₹")
                   for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) if num else cell.ljust(w)
                               for cell, w, num in zip(row, widths, numeric, strict=True))
                     .rstrip() for row in cells)


def positions(result: dict[str, Any] | list[dict[str, Any]]) -> str:
    """``kitesaga positions`` (the reply, or its list of positions)."""
    rows = result["positions"] if isinstance(result, dict) else result
    if not rows:
        return "no open positions"
    return table(("strategy", "instrument", "qty", "avg price", "last", "unrealised",
                  "realised", "charges"),
                 [(p["strategy"], p["instrument"], p["quantity"],
                   _money(p["average_price_paise"]), _money(p["last_price_paise"]),
                   _money(p["unrealised_paise"]), _money(p["realised_paise"]),
                   _money(p["charges_paise"])) for p in rows])


def _rates(rates: dict[str, Any]) -> str:
    parts = []
    for name, cls in rates["classes"].items():
        windows = ", ".join(f"{w['used']}/{w['limit']} per {w['span_s']:g}s"
                            for w in cls["windows"])
        extra = "".join(f", {cls[k]} {k}" for k in ("queued", "throttled") if cls[k])
        parts.append(f"{name} {windows}{extra}")
    return (f"{'; '.join(parts)}; orders today {rates['orders_today']}/"
            f"{rates['orders_per_day']}" + (f", {rates['refused']} refused"
                                            if rates["refused"] else ""))


def _reconciliation(rec: dict[str, Any]) -> str:
    if rec["mode"] != "live":
        return f"{rec['mode']}: never reconciled (start-up {rec['startup']})"
    round_at = rec["round_at"] or "none yet"
    ok = {True: "ok", False: "not ok", None: ""}[rec["round_ok"]]
    line = (f"start-up {rec['startup']}" + (f" ({rec['startup_reason']})"
                                            if rec["startup_reason"] else "")
            + f"; last round {round_at} {ok}; {rec['checks']}; {len(rec['drifts'])} drift(s)")
    return line + "".join(f"\n    {d['kind']} {d['key']}: engine {d['engine']}, broker "
                          f"{d['broker']} ({d['detail']})" for d in rec["drifts"])


def _prices(prices: dict[str, Any]) -> str:
    if not prices["instruments"]:
        line = "none yet"
    else:
        line = (f"{prices['instruments']} instrument(s), newest {prices['newest_age_s']:.1f}s "
                f"old, oldest {prices['oldest_age_s']:.1f}s old")
    line += f", {prices['rejected']} rejected"
    return line + (f"  STALE: {prices['stale']}" if prices["stale"] else "")


def status(result: dict[str, Any]) -> str:
    """``kitesaga status``."""
    trading, pnl, cash, sagas_ = (result["trading"], result["pnl"], result["cash"],
                                  result["sagas"])
    stats = sagas_["stats"]
    journal = result["journal"]
    lines = [
        f"kitesaga {result['mode']}  {trading['state']} ({trading['reason']})"
        + ("  STOPPING" if trading["draining"] else "")
        + f"  up {result['uptime_s']:.0f}s  engine clock {result['now']}",
        f"positions   {result['positions']['count']}",
        f"P&L         realised {_money(pnl['realised_paise'])}  unrealised "
        f"{_money(pnl['unrealised_paise'])}  charges {_money(pnl['charges_paise'])}  net "
        f"{_money(pnl['net_paise'])}",
        f"cash        free {_money(cash['free_paise'])}  reserved "
        f"{_money(cash['reserved_paise'])}  margin {_money(cash['margin_paise'])}",
        f"sagas       {sagas_['in_flight']} in flight ({sagas_['exiting']} exiting); "
        f"started {stats.get('sagas_started', 0)}, completed "
        f"{stats.get('sagas_completed', 0)}, compensated {stats.get('sagas_compensated', 0)}, "
        f"refused {stats.get('sagas_refused', 0)}",
        f"rate limits {_rates(result['rate_limits'])}",
        f"reconcile   {_reconciliation(result['reconciliation'])}",
        f"prices      {_prices(result['prices'])}",
        "journal     " + ("off" if journal is None or not journal["enabled"] else
                          f"FAILED: {journal['last_error']}" if journal["failed"] else
                          f"ok, {journal['events']} events"),
        "alerts      " + ("none" if not result["alerts"] else "".join(
            f"\n  {a['severity'].upper():<8} {a['name']}: {a['message']}"
            for a in result["alerts"])),
    ]
    if result["positions"]["open"]:
        lines += ["", positions(result["positions"]["open"])]
    return "\n".join(lines)


def orders(result: dict[str, Any]) -> str:
    """``kitesaga orders``."""
    rows = result["orders"]
    if not rows:
        return "no working orders"
    return table(("saga", "kind", "strategy", "role", "side", "symbol", "qty", "filled",
                  "status", "broker order"),
                 [(o["saga_id"], o["kind"], o["strategy"], o["role"], o["side"],
                   o["tradingsymbol"], o["quantity"], o["filled"], o["status"],
                   o["broker_order_id"] or "-") for o in rows])


def sagas(result: dict[str, Any]) -> str:
    """``kitesaga sagas``."""
    found = result["sagas"]
    if not found:
        return "no sagas in flight"
    lines = []
    for s in found:
        lines.append(f"{s['saga_id']}  {s['kind']:<5} {s['strategy']}  {s['step']}"
                     + (f"  ({s['reason']})" if s["reason"] else "")
                     + f"  {s['seconds_left']:.1f}s to its deadline")
        lines += [f"    {o['role']:<6} {o['side']:<4} {o['tradingsymbol']} {o['filled']}/"
                  f"{o['quantity']} {o['status']} {o['broker_order_id'] or '-'}"
                  for o in s["orders"]]
    return "\n".join(lines)


def submitted(result: dict[str, Any]) -> str:
    """``kitesaga submit``."""
    what = (f"{result['action']} {result['side']} {result['quantity']} {result['instrument']}"
            f" {'MARKET' if result['price_paise'] is None else _money(result['price_paise'])}"
            f" for strategy {result['strategy']}")
    saga = result.get("saga_id") or "-"
    outcome = result["outcome"]
    if outcome == "completed":
        return f"completed: saga {saga}: {what}; filled {result['filled_quantities']}"
    if outcome == "running":
        return (f"still running: saga {saga}: {what}; see `kitesaga sagas` and "
                f"`kitesaga positions`")
    if outcome == "unanswered":
        return f"no answer yet: {what}; see `kitesaga sagas`"
    return f"{outcome}: saga {saga}: {what}: {result.get('reason', '')}"


def halted(result: dict[str, Any]) -> str:
    """``kitesaga halt``."""
    lines = [f"halt{' --flatten' if result['flatten'] else ''}: {result['reason']}",
             f"  sagas in flight   {result['sagas_in_flight']}"
             + "".join(f"\n    {s['saga_id']} {s['kind']} {s['strategy']} {s['step']}"
                       for s in result["sagas"]),
             f"  cancels requested {result['cancels']}",
             f"  exits started     {result['exits']}",
             f"  positions before  {len(result['positions_before'])}"
             + "".join(f"\n    {p}" for p in result["positions_before"]),
             f"  positions after   {len(result['positions_after'])}"
             + "".join(f"\n    {p}" for p in result["positions_after"]),
             f"  trading           {result['trading_state']} ({result['trading_reason']})"]
    if result["done"]:
        lines.append("done: nothing in flight"
                     + (", no position open" if result["flatten"] else ""))
    else:
        still = result["still_open"]
        lines.append(f"TIMED OUT after {result['halt_timeout_s']:g}s (control.halt_timeout_s): "
                     f"{still['sagas_in_flight']} saga(s) still in flight"
                     + (f", {len(still['positions'])} position(s) still open"
                        if result["flatten"] else ""))
    return "\n".join(lines)


def resumed(result: dict[str, Any]) -> str:
    """``kitesaga resume``."""
    return (f"trading {result['state']} ({result['reason']}); was {result['previous_state']} "
            f"({result['previous_reason']})"
            + ("; but the engine is stopping: no new entries" if result["draining"] else ""))
