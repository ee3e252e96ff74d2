"""The control socket's commands that talk to OrderActor: ``sagas``, ``orders``,
``submit``, ``halt`` and ``resume``. Each one ``tell``s a message with a reply
address (a :class:`_Reply` queue, outside every actor) and waits, bounded by the
``[control]`` timeouts, for the answer or for the published snapshots to show
the effect. Nothing here touches an actor's state."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

from actors._exits import configured_rules
from actors.control._protocol import ControlError
from messages import (
    DescribeSagas,
    Fill,
    Halt,
    HaltStarted,
    Money,
    OrderLeg,
    OrderType,
    Product,
    ResumeTrading,
    SagaCompensated,
    SagaCompleted,
    SagaRefused,
    SagasDescribed,
    SagaStarted,
    Side,
    SubmitEntry,
    SubmitExit,
    TradingState,
)

if TYPE_CHECKING:
    from actors._system import Engine

__all__ = ["MANUAL", "halt", "orders", "resume", "sagas", "submit"]

MANUAL = "manual"
"""The strategy name of every order submitted by hand (``kitesaga submit``)."""

_WORKING = frozenset({"PLACING", "WORKING", "UNKNOWN"})
_UNFINISHED_STARTUP = ("pending", "drift", "error")
T = TypeVar("T")


class _Reply:
    """A reply address for one request: the actors ``tell`` it; the control
    thread takes the messages off in order (a thread-safe queue, not an actor)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []

    def tell(self, message: Any) -> None:
        self._queue.put(message)

    def next_of(self, kinds: tuple[type[Any], ...], deadline: float) -> Any | None:
        """The next message of one of ``kinds`` (remembering every other in ``seen``),
        or None at ``deadline`` (a ``time.monotonic()`` value)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                message = self._queue.get(timeout=left)
            except queue.Empty:
                return None
            self.seen.append(message)
            if isinstance(message, kinds):
                return message


def _until(done: Callable[[], bool], timeout: float, interval: float) -> bool:
    """Re-read published state every ``interval`` s until ``done()`` or ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a bounded pause between reads, not a signal
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pause.wait(min(interval, left))
    return True


def _ask(engine: Engine, message: Callable[[_Reply], Any], answer: type[T]) -> T:
    reply = _Reply()
    engine.orders.tell(message(reply))
    timeout = engine.config.control.timeout_s
    got = reply.next_of((answer,), time.monotonic() + timeout)
    if got is None:
        raise ControlError(f"OrderActor did not answer within {timeout:g}s "
                           f"(control.timeout_s)", 1)
    result: T = got
    return result


def _saga_list(described: SagasDescribed) -> list[dict[str, Any]]:
    return [{"saga_id": s.saga_id, "kind": s.kind, "strategy": s.strategy, "step": s.step,
             "reason": s.reason, "seconds_left": s.seconds_left,
             "orders": [{"tag": o.tag, "broker_order_id": o.broker_order_id, "role": o.role,
                         "side": o.side, "tradingsymbol": o.tradingsymbol,
                         "quantity": o.quantity, "filled": o.filled, "status": o.status}
                        for o in s.orders]} for s in described.sagas]


def sagas(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Every saga in flight, as OrderActor describes it (DescribeSagas)."""
    described = _ask(engine, lambda r: DescribeSagas(reply_to=r), SagasDescribed)
    return {"sagas": _saga_list(described)}


def orders(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """The working orders (placing, working at the broker, or outcome unknown) of
    the sagas in flight."""
    working = [{"saga_id": s["saga_id"], "kind": s["kind"], "strategy": s["strategy"], **o}
               for s in sagas(engine, args)["sagas"] for o in s["orders"]
               if o["status"] in _WORKING]
    return {"orders": working}


def _text(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: must be a non-empty text, got {value!r}")
    return value.strip()


def _quantity(args: dict[str, Any]) -> int:
    value = args.get("quantity")
    if type(value) is str and value.strip().lstrip("+").isdigit():
        value = int(value)
    if type(value) is not int or value <= 0:
        raise ValueError(f"quantity: must be a positive whole number, got {value!r}")
    return value


def _price(args: dict[str, Any]) -> Money | None:
    value = args.get("price")
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"price: must be a number of rupees, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"price: must be a finite number of rupees > 0, got {value!r}")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"price: must be whole paise (2 decimals at most), got {value!r}")
    return Money.from_rupees(amount, "price")


def _choice(args: dict[str, Any], name: str, default: str, kind: type[Any]) -> Any:
    value = _text(args, name, default).upper()
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{name}: must be one of {allowed}, got {value!r}") from None


def _fill(fill: Fill) -> dict[str, Any]:
    return {"fill_id": fill.fill_id, "side": fill.side.value, "quantity": fill.quantity,
            "price_paise": fill.price.paise, "charges_paise": fill.charges.paise,
            "timestamp": fill.timestamp.isoformat()}


def submit(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """A hand-made order for strategy ``manual``, through the strategies' path.

    BUY or SELL opens a position (SubmitEntry; a SELL opens a short) with the
    ``[exits]`` rules, LIMIT at ``price`` or MARKET. An order opposite to an open
    ``manual`` position in the same instrument closes it (SubmitExit) when its
    quantity is the whole position, and is refused otherwise (no partial closes).
    Waits ``control.timeout_s`` for the saga to end; ``outcome`` is ``completed``,
    ``compensated``, ``refused`` or ``running`` (with its ``saga_id``)."""
    side = _choice(args, "side", "", Side)
    quantity = _quantity(args)
    price = _price(args)
    exchange = _text(args, "exchange", "NFO").upper()
    symbol = _text(args, "symbol")
    product = _choice(args, "product", "NRML", Product)
    instrument = engine.instruments.by_symbol(exchange, symbol)
    token = instrument.instrument_token
    held = engine.portfolio_snapshot.positions.get((MANUAL, token))
    reply = _Reply()
    result: dict[str, Any] = {"strategy": MANUAL, "instrument": instrument.key,
                              "side": side.value, "quantity": quantity,
                              "price_paise": None if price is None else price.paise}
    message: SubmitEntry | SubmitExit
    if held is not None and held.quantity and (held.quantity > 0) != (side is Side.BUY):
        if quantity != abs(held.quantity):
            raise ControlError(f"refused: {MANUAL} holds {held.quantity:+d} of "
                               f"{instrument.key}; a {side.value} closes the whole position "
                               f"only: submit {side.value} {symbol} {abs(held.quantity)}", 1)
        if price is not None:
            raise ValueError(f"price: closing {instrument.key} is a MARKET exit, got "
                             f"--price {args.get('price')}")
        result["action"] = "exit"
        message = SubmitExit(MANUAL, token, "closed by the operator", reply)
    else:
        leg = OrderLeg(instrument, side, quantity,
                       OrderType.MARKET if price is None else OrderType.LIMIT, product, price)
        result["action"] = "entry"
        message = SubmitEntry(MANUAL, (leg,), configured_rules(engine.config.exits), reply)
    engine.orders.tell(message)
    deadline = time.monotonic() + engine.config.control.timeout_s
    ended = reply.next_of((SagaRefused, SagaCompleted, SagaCompensated), deadline)
    started = [m for m in reply.seen if isinstance(m, SagaStarted)]
    result["saga_id"] = started[0].saga_id if started else None
    if ended is None:
        result.update(outcome="running" if started else "unanswered")
    elif isinstance(ended, SagaRefused):
        result.update(outcome="refused", reason=ended.reason)
    elif isinstance(ended, SagaCompensated):
        result.update(outcome="compensated", reason=ended.reason,
                      realised_cost_paise=ended.realised_cost.paise)
    else:
        result.update(outcome="completed", filled_quantities=list(ended.filled_quantities),
                      fills=[_fill(f) for f in ended.fills])
    return result


def _open_keys(engine: Engine) -> list[str]:
    return sorted(f"{strategy}:{_key(engine, token)} {view.quantity:+d}"
                  for (strategy, token), view in engine.portfolio_snapshot.positions.items()
                  if view.quantity)


def _key(engine: Engine, token: int) -> str:
    try:
        return engine.instruments.get(token).key
    except ValueError:
        return str(token)


def halt(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """The emergency stop: Halt(reason, flatten) to OrderActor, then wait up to
    ``control.halt_timeout_s`` until no saga is in flight and, with ``flatten``, no
    position is open. ``done`` says whether that happened; ``still_open`` what is
    left when it did not."""
    flatten = args.get("flatten", False)
    if type(flatten) is not bool:
        raise ValueError(f"flatten: must be true or false, got {flatten!r}")
    reply = _Reply()
    message = Halt(_text(args, "reason", "kitesaga halt"), flatten, reply)  # validated
    before = _open_keys(engine)
    control = engine.config.control
    engine.orders.tell(DescribeSagas(reply_to=reply))  # the sagas the halt will meet
    engine.orders.tell(message)
    deadline = time.monotonic() + control.timeout_s
    described = reply.next_of((SagasDescribed,), deadline)
    started = reply.next_of((HaltStarted,), deadline)
    if started is None:
        raise ControlError(f"OrderActor did not confirm the halt within {control.timeout_s:g}s "
                           f"(control.timeout_s); run `kitesaga status`", 1)

    def settled() -> bool:
        if engine.orders_snapshot.in_flight:
            return False
        return not flatten or engine.portfolio_snapshot.open_positions == 0

    done = _until(settled, control.halt_timeout_s, control.poll_interval_s)
    snap = engine.orders_snapshot
    after = _open_keys(engine)
    return {"reason": started.reason, "flatten": flatten, "cancels": started.cancels,
            "exits": started.exits, "sagas_in_flight": started.sagas_in_flight,
            "sagas": [] if described is None else _saga_list(described),
            "positions_before": before, "positions_after": after,
            "trading_state": snap.state.value, "trading_reason": snap.state_reason,
            "done": done, "halt_timeout_s": control.halt_timeout_s,
            "still_open": {"sagas_in_flight": snap.in_flight,
                           "positions": after if flatten else []}}


def resume(engine: Engine, args: dict[str, Any]) -> dict[str, Any]:
    """Trading ACTIVE again (SetTradingState), refused while the live start-up
    reconciliation has not come out clean, unless ``force``."""
    force = args.get("force", False)
    if type(force) is not bool:
        raise ValueError(f"force: must be true or false, got {force!r}")
    sync = engine.sync_snapshot
    if sync.startup in _UNFINISHED_STARTUP and not force:
        why = f": {sync.startup_reason}" if sync.startup_reason else ""
        raise ControlError(f"refused: the start-up reconciliation with the broker is "
                           f"{sync.startup}{why}; resolve it first (see `kitesaga status`), "
                           f"or resume anyway with --force", 1)
    before = engine.orders_snapshot
    reason = "resumed by the operator" + (
        f" (--force past a start-up reconciliation {sync.startup})"
        if sync.startup in _UNFINISHED_STARTUP else "")
    engine.orders.tell(ResumeTrading(reason))
    control = engine.config.control

    def active() -> bool:
        snap = engine.orders_snapshot
        return snap.state is TradingState.ACTIVE and snap.state_reason == reason

    if not _until(active, control.timeout_s, control.poll_interval_s):
        raise ControlError(f"trading is still {engine.orders_snapshot.state.value} after "
                           f"{control.timeout_s:g}s (control.timeout_s)", 1)
    snap = engine.orders_snapshot
    return {"previous_state": before.state.value, "previous_reason": before.state_reason,
            "state": snap.state.value, "reason": snap.state_reason, "forced": bool(force),
            "draining": snap.draining}
