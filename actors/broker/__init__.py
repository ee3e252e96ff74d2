"""The paper broker: charges, a matching engine and the actor that serves the gateway interface.

``PaperBrokerActor`` answers PlaceOrder, CancelBrokerOrder, QueryOrder and
FindOrdersByTag exactly as the Kite gateway does; ``RecordPrices`` feeds it
the simulated market. ``build_engine(config)`` wires an engine from
configuration.
"""

from actors.broker._account import BrokerAccount
from actors.broker._charges import Charges, ChargeSchedule, segment_for
from actors.broker._matching import (
    TERMINAL_ORDER_CAP,
    MatchingEngine,
    PlaceOutcome,
    PlaceResult,
)
from actors.broker._paper import BrokerSnapshot, PaperBrokerActor, build_engine
from actors.broker._restore import restore_orders

__all__ = [
    "TERMINAL_ORDER_CAP",
    "BrokerAccount",
    "BrokerSnapshot",
    "ChargeSchedule",
    "Charges",
    "MatchingEngine",
    "PaperBrokerActor",
    "PlaceOutcome",
    "PlaceResult",
    "build_engine",
    "restore_orders",
    "segment_for",
]
