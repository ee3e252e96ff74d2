"""SyncActor: reconciliation of the engine's book with the broker (live mode only).

It compares and reports; for position drifts it asks OrderActor (the book's owner)
to make the book follow the broker (``actors._sync_resolve``). It never writes a book.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from actors import _drift
from actors._base import EngineActor, Wake, WakeTimer
from actors._drift import BookView, CheckStatus, SyncSnapshot
from actors._exits import configured_rules
from actors._published import Published
from actors._sync_resolve import DriftResolution
from actors.kite._calls import CallError, PermittedCalls, _Call
from actors.kite._convert import BrokerReplyError
from messages import (
    DriftDetected,
    EndpointClass,
    Inbox,
    PermitRefused,
    Priority,
    Reconcile,
    Reconciled,
    ReconcileSkipped,
    SetTradingState,
    SyncCheck,
    TradingState,
)

if TYPE_CHECKING:
    from actors._drift import Identity
    from actors._order import OrdersSnapshot
    from actors._portfolio import PortfolioSnapshot
    from actors.config import Config
    from actors.kite._gateway import GatewaySnapshot
    from actors.market import InstrumentTable

__all__ = ["AWAITING", "CheckStatus", "Reconcile", "ReconcileSkipped", "SyncActor",
           "SyncSnapshot", "SyncWiring"]

_log = structlog.get_logger("kitesaga.sync")

AWAITING = "awaiting start-up reconciliation"
"""The HALTED reason SyncActor sets at start; only this halt is lifted by a clean start-up."""

_CALLS = {SyncCheck.POSITIONS: "positions", SyncCheck.ORDERS: "orders",
          SyncCheck.GTTS: "get_gtts"}
_COUNTERS = ("calls", "call_errors", "throttled", "skipped", "rounds", "observations",
             "bad_replies", "drifts_declared", "drifts_resolved", "candidates_dropped",
             "startup_attempts", "resolutions")


@dataclass(frozen=True, slots=True)
class SyncWiring:
    """What a live SyncActor needs: its own client, the limiter, OrderActor (for the
    trading state) and read-only views of the engine's published snapshots: ``book``
    (:func:`actors._drift.book_view`), ``ours`` (is a broker tag the engine's?) and
    ``name_of`` (``EXCHANGE:SYMBOL`` of an instrument the broker does not name)."""

    kite: Any
    config: Config
    limiter: Inbox
    orders: Inbox
    book: Callable[[], BookView]
    orders_snapshot: Callable[[], OrdersSnapshot]
    now: Callable[[], datetime]
    name_of: Callable[[int], str]
    listeners: tuple[Inbox, ...] = ()
    ours: Callable[[str], bool] = _drift.is_engine_tag

    @classmethod
    def of_engine(cls, kite: Any, config: Config, limiter: Inbox, orders: Inbox,
                  portfolio: Published[PortfolioSnapshot], orders_cell: Published[OrdersSnapshot],
                  gateway: Published[GatewaySnapshot], instruments: InstrumentTable,
                  now: Callable[[], datetime], listeners: tuple[Inbox, ...]) -> SyncWiring:
        """The wiring from the Engine's published cells (each read with ``latest()``)."""
        protection = config.live.gtt_protection

        def book() -> BookView:
            return _drift.book_view(portfolio.latest(), orders_cell.latest(),
                                    gateway.latest(), protection)

        def name_of(token: int) -> str:
            return instruments.get(token).key if token in instruments else f"token:{token}"

        return cls(kite, config, limiter, orders, book, orders_cell.latest, now, name_of,
                   listeners)


@dataclass(slots=True)
class _Round:
    """A full round: waits for an observation of each check of generation ``needed``
    or later (one started after the round), collecting their errors."""

    reply_to: Inbox | None
    startup: bool
    needed: dict[SyncCheck, int]
    errors: dict[SyncCheck, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Check:
    """One check's state (SyncActor's thread only)."""

    every: float
    due: float
    running: bool = False
    rerun: bool = False
    gen: int = 0
    at: datetime | None = None
    error: str = ""
    candidates: dict[Identity, DriftDetected] = field(default_factory=dict)
    standing: dict[Identity, DriftDetected] = field(default_factory=dict)

    def status(self) -> CheckStatus:
        result = "pending" if self.at is None else "error" if self.error else \
            "drift" if self.standing else "ok"
        return CheckStatus(self.at, result, len(self.standing), len(self.candidates), self.error)


class SyncActor(DriftResolution, PermittedCalls, EngineActor):
    """Reconciles the book with the broker — never in paper mode.

    Contract:
    * Paper mode (or no wiring): it never reads or writes the paper book (the old
      sync wiped paper profits): each Reconcile → ReconcileSkipped, no broker call.
    * Live: positions, orders and GTTs are each compared on their own
      interval (``[sync]``), every call on a READ permit in the OTHER class.
      Each completed check publishes ``snapshot``. A drift is declared by the
      two-observation rule (``actors._drift``), logged at WARNING as "drift"
      with both figures and told once to every listener as DriftDetected; one
      that disappears is logged as "drift_resolved". A bad broker reply makes
      the check's result "error" (counted, logged with the field): no crash.
    * A declared position drift is resolved (``DriftResolution``): quantity the
      broker holds beyond the book is adopted as EXTERNAL, quantity the book
      holds beyond the broker is closed only on broker trades as evidence.
    * ``Reconcile(reply_to)``: a fresh observation of every check → Reconciled.
    * Fail-closed start-up: constructing it tells OrderActor HALTED
      (``AWAITING``) before anything started later can reach OrderActor; the
      first full round runs at once, and until start-up is decided only a
      settled observation declares a drift (recovered sagas may be moving).
      Clean → ACTIVE (unless another halt came meanwhile: it stands). Drift
      being resolved → the round is retried; drift that stands → HALTED naming
      the count and kinds. Errors or unsettled differences → the
      round is retried every ``startup_retry_s`` until ``startup_timeout_s``,
      then HALTED with the error. After start-up it never changes the trading
      state, but for one HALTED on a dead broker session (TokenException).
    """

    def __init__(self, mode: str, wiring: SyncWiring | None = None) -> None:
        super().__init__()
        self._mode = mode
        self._wiring = wiring if mode == "live" else None
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._jobs = {}
        self._next_job = 0
        self._rounds: list[_Round] = []
        self._checks: dict[SyncCheck, _Check] = {}
        self._startup = "pending" if self._wiring is not None else "skipped"
        self._startup_reason = ""
        self._began = time.monotonic()
        self._retry_at: float | None = None
        self._round_at: datetime | None = None
        self._round_ok: bool | None = None
        self._last_at: datetime | None = None
        self._token_dead = False
        self._rows: tuple[Any, ...] = ()
        self._init_resolution()
        self.snapshot: Published[SyncSnapshot] = Published(SyncSnapshot(mode, self._startup))
        self._me: Inbox = self.actor_ref
        self._timer = WakeTimer(self.actor_ref)
        if self._wiring is not None:
            w = self._wiring
            self._kite, self._limiter, self._limits = w.kite, w.limiter, w.config.rate_limits
            self._sync = w.config.sync
            every = (self._sync.positions_interval_s, self._sync.orders_interval_s,
                     self._sync.gtt_interval_s)  # in SyncCheck's order
            self._checks = {c: _Check(s, time.monotonic() + s)
                            for c, s in zip(SyncCheck, every, strict=True)}
            # here, not in on_start: this runs on the Engine's thread, so the halt is in
            # OrderActor's inbox before anything started later can send it an entry
            w.orders.tell(SetTradingState(TradingState.HALTED, AWAITING))

    def on_start(self) -> None:
        if self._wiring is not None:
            self._start_round(None, startup=True)
            self._after()

    def on_stop(self) -> None:
        self._timer.cancel()

    def receive(self, message: Any) -> Any:
        if isinstance(message, Reconcile) and self._wiring is None:
            self._counts["skipped"] += 1
            reason = ("paper mode: the paper book is never reconciled against a broker"
                      if self._mode == "paper" else "live reconciliation is not wired")
            _log.info("reconcile_skipped", mode=self._mode, reason=reason)
            self.reply_after_publish(message.reply_to, ReconcileSkipped(reason))
        elif isinstance(message, Reconcile):
            self._start_round(message.reply_to, startup=False)
        elif isinstance(message, _Call) and self._wiring is not None:
            self._on_call(message)
        elif isinstance(message, Wake) and self._wiring is not None:
            self._timer.fired(message)
            self._wake()
        elif isinstance(message, PermitRefused):
            self._call_refused(message)
        else:
            self.unhandled(message)
        self._after()
        return None

    # -- rounds and the start-up gate ----------------------------------------------------

    def _start_round(self, reply_to: Inbox | None, startup: bool) -> None:
        self._counts["rounds"] += 1
        self._counts["startup_attempts"] += int(startup)
        self._rounds.append(_Round(reply_to, startup,
                                   {c: state.gen + 1 for c, state in self._checks.items()}))
        for check in SyncCheck:
            self._observe(check)

    def _round_done(self, done: _Round) -> None:
        assert self._wiring is not None
        standing = [d for state in self._checks.values() for d in state.standing.values()]
        candidates = sum(len(state.candidates) for state in self._checks.values())
        reason = _drift.round_reason(standing, candidates, done.errors)
        self._round_at, self._round_ok = self._wiring.now(), not reason
        _log.info("reconciled", ok=not reason, drifts=len(standing), reason=reason,
                  startup=done.startup)
        self.reply_after_publish(done.reply_to, Reconciled(
            self._round_at, not reason, tuple(SyncCheck), len(standing), reason[:500]))
        if not done.startup or self._startup != "pending":
            return
        if not reason:
            self._startup, self._startup_reason = "clean", "start-up reconciliation clean"
            self._gate(TradingState.ACTIVE, self._startup_reason)
        elif (standing and not self._resolving) or \
                time.monotonic() - self._began >= self._sync.startup_timeout_s:
            self._startup = "drift" if standing else "error"
            self._startup_reason = ("start-up reconciliation: " if standing else
                                    "start-up reconciliation failed: ") + reason
            _log.error("alert", alert="startup_reconciliation_failed", reason=reason,
                       action="new entries stay HALTED")
            self._gate(TradingState.HALTED, self._startup_reason[:200])
        else:
            self._retry_at = time.monotonic() + self._sync.startup_retry_s
            _log.warning("startup_reconciliation_retry", reason=reason,
                         retry_in_s=self._sync.startup_retry_s)

    def _gate(self, state: TradingState, reason: str) -> None:
        """Tell OrderActor ``state`` unless somebody else's halt came meanwhile (it stands)."""
        assert self._wiring is not None
        orders = self._wiring.orders_snapshot()
        # ACTIVE here means our AWAITING halt is still on its way: this message follows it
        if orders.state is TradingState.ACTIVE or orders.state_reason == AWAITING:
            _log.info("startup_gate", state=state.value, reason=reason)
            self.tell_if_alive(self._wiring.orders, SetTradingState(state, reason))
        else:
            _log.warning("startup_gate", state=orders.state.value, wanted=state.value,
                         reason=orders.state_reason)

    # -- observations --------------------------------------------------------------------

    def _wake(self) -> None:
        now = time.monotonic()
        if self._retry_at is not None and self._retry_at <= now:
            self._retry_at = None
            if self._startup == "pending":
                self._start_round(None, startup=True)
        for check, state in self._checks.items():
            if state.due <= now and not state.running:
                self._observe(check)

    def _observe(self, check: SyncCheck) -> None:
        assert self._wiring is not None
        state = self._checks[check]
        if state.running:
            state.rerun = True
            return
        state.running = True
        state.gen += 1
        gen, before = state.gen, self._wiring.book()
        self._request(EndpointClass.OTHER, Priority.READ, _CALLS[check], {},
                      lambda data, error: self._observed(check, gen, before, data, error))

    def _observed(self, check: SyncCheck, gen: int, before: BookView, data: Any,
                  error: CallError | None) -> None:
        assert self._wiring is not None
        state = self._checks[check]
        state.running = False
        self._counts["observations"] += 1
        after = self._wiring.book()
        settled = before.quiet and after.quiet and before.sagas_started == after.sagas_started
        if check is SyncCheck.GTTS:
            settled = settled and before.gtts_quiet and after.gtts_quiet
        now = state.at = self._last_at = self._wiring.now()
        state.error = error.message if error is not None else ""
        if error is None:
            try:
                self._take(check, state, self._compare(check, data, after, settled, now),
                           settled)
            except BrokerReplyError as exc:
                self._counts["bad_replies"] += 1
                state.error = f"bad broker reply: {exc}"[:500]
                _log.warning("bad_broker_reply", check=check.value, error=str(exc)[:500])
        state.due = time.monotonic() + state.every
        if check is SyncCheck.POSITIONS and error is None and self._resolve(
                list(state.standing.values()), after, self._rows, self._wiring.orders,
                configured_rules(self._wiring.config.exits), now, self._wiring.ours):
            # look again soon: the resolution should show in the book
            state.due = time.monotonic() + min(state.every, self._sync.startup_retry_s)
        for open_round in list(self._rounds):
            if open_round.needed.get(check, gen + 1) <= gen:
                del open_round.needed[check]
                if state.error:
                    open_round.errors[check] = state.error
                if not open_round.needed:
                    self._rounds.remove(open_round)
                    self._round_done(open_round)
        if state.rerun:
            state.rerun = False
            self._observe(check)

    def _compare(self, check: SyncCheck, data: Any, book: BookView, settled: bool,
                 now: datetime) -> list[DriftDetected]:
        assert self._wiring is not None
        if check is SyncCheck.POSITIONS:
            self._rows = _drift.parse_positions(data)
            return _drift.compare_positions(book.positions, self._rows, self._wiring.name_of)
        if check is SyncCheck.ORDERS:
            return _drift.compare_orders(_drift.parse_orders(data), self._wiring.ours, settled,
                                         now, self._sync.in_flight_max_age_s)
        return _drift.compare_gtts(_drift.parse_gtts(data), book.positions, book.protected)

    def _take(self, check: SyncCheck, state: _Check, found: list[DriftDetected],
              settled: bool) -> None:
        """Apply the two-observation rule; announce new drifts, log resolved ones."""
        assert self._wiring is not None
        pending = self._startup == "pending"  # then only a settled observation declares
        declared, candidates = _drift.confirm(found, {} if pending else state.candidates,
                                              settled, () if pending else _drift.IMMEDIATE)
        for identity, drift in candidates.items():
            if identity not in state.candidates:
                _log.info("drift_candidate", check=check.value, kind=drift.kind.value,
                          key=drift.key, engine=drift.engine, broker=drift.broker)
        standing = {d.identity: d for d in declared}
        self._counts["candidates_dropped"] += sum(
            1 for i in state.candidates if i not in candidates and i not in standing)
        for identity, drift in standing.items():
            if identity not in state.standing:
                self._counts["drifts_declared"] += 1
                _log.warning("drift", check=check.value, kind=drift.kind.value, key=drift.key,
                             engine=drift.engine, broker=drift.broker, detail=drift.detail,
                             settled=settled)
                for listener in self._wiring.listeners:
                    self.reply_after_publish(listener, drift)
        for identity, drift in state.standing.items():
            if identity not in standing:
                self._counts["drifts_resolved"] += 1
                _log.info("drift_resolved", check=check.value, kind=drift.kind.value,
                          key=drift.key)
        state.standing, state.candidates = standing, candidates

    def _session_dead(self, error: CallError) -> None:
        """A TokenException: halt new entries once, as the gateway does."""
        assert self._wiring is not None
        if self._token_dead:
            return
        self._token_dead = True
        _log.error("alert", alert="broker_session_expired", error=error.message,
                   action="new entries HALTED; run `kitesaga login` and restart")
        self.tell_if_alive(self._wiring.orders, SetTradingState(
            TradingState.HALTED, "broker session expired (TokenException): kitesaga login"))

    def _after(self) -> None:
        """Arm the next wake-up, publish, then send what waited for the snapshot."""
        dues = [s.due for s in self._checks.values() if not s.running]
        if self._retry_at is not None:
            dues.append(self._retry_at)
        if dues:
            self._timer.arm(min(dues))
        checks = self._checks
        self.snapshot.publish(SyncSnapshot(
            self._mode, self._startup, self._startup_reason, self._last_at, self._round_at,
            self._round_ok, MappingProxyType({c: checks[c].status() if c in checks else
                                              CheckStatus() for c in SyncCheck}),
            tuple(d for s in checks.values() for d in s.standing.values()),
            MappingProxyType(dict(self._counts))))
        self.send_replies()
