"""kitesaga's protocol: immutable, typed, validated messages and value types.

Commands are imperatives (``SubmitEntry``, ``ReserveCash``); events are facts
in the past tense (``CashReserved``, ``SagaCompleted``). Every one is a
frozen, slotted dataclass validated at construction: a message that cannot
be valid cannot be built, and the ``ValueError`` names the field and value.
``to_dict``/``from_dict`` serialise any of them.
"""

from messages._codec import encode_scalar, from_dict, to_dict
from messages._commands import (
    ApplyFill,
    CancelBrokerOrder,
    CancelEntry,
    EndpointClass,
    FindOrdersByTag,
    Inbox,
    PlaceOrder,
    PricesProcessed,
    Priority,
    QueryOrder,
    RecordPrices,
    ReleaseCash,
    RequestPermit,
    ReserveCash,
    SetTradingState,
    SubmitEntry,
    SubmitExit,
    Subscribe,
    TradingState,
)
from messages._control import (
    DescribeSagas,
    Halt,
    HaltStarted,
    OrderView,
    ResumeTrading,
    SagasDescribed,
    SagaView,
)
from messages._events import (
    CashRefused,
    CashReleased,
    CashReserved,
    ExitDecided,
    FillApplied,
    OrderOutcomeUnknown,
    OrderPlaced,
    OrderRejected,
    OrdersFound,
    OrderUpdated,
    PermitGranted,
    PermitRefused,
    PriceRejected,
    PricesUpdated,
    SagaCompensated,
    SagaCompleted,
    SagaKind,
    SagaRefused,
    SagaStarted,
    TradingStateChanged,
)
from messages._live import (
    CallThrottled,
    CheckMargins,
    MarginsChecked,
    PositionProtected,
    ProtectionFailed,
    ProtectionRemoved,
    ProtectPosition,
    RemoveProtection,
)
from messages._orders import ExitRules, Fill, OrderLeg, OrderRequest, OrderState, OrderStatus
from messages._sync import (
    EXTERNAL,
    SYNC_SAGA,
    AdoptPosition,
    DriftDetected,
    DriftKind,
    PositionAdopted,
    Reconcile,
    Reconciled,
    ReconcilePosition,
    ReconcileSkipped,
    StrategyFill,
    SyncCheck,
)
from messages._values import (
    Exchange,
    Instrument,
    InstrumentKind,
    Money,
    OrderType,
    Price,
    Product,
    Side,
)

__all__ = [
    "EXTERNAL", "SYNC_SAGA", "AdoptPosition", "ApplyFill", "CallThrottled",
    "CancelBrokerOrder", "CancelEntry", "CashRefused", "CashReleased", "CashReserved",
    "CheckMargins", "DescribeSagas", "DriftDetected", "DriftKind", "EndpointClass", "Exchange",
    "ExitDecided", "ExitRules", "Fill", "FillApplied", "FindOrdersByTag", "Halt",
    "HaltStarted", "Inbox", "Instrument", "InstrumentKind", "MarginsChecked", "Money",
    "OrderLeg", "OrderOutcomeUnknown", "OrderPlaced", "OrderRejected", "OrderRequest",
    "OrderState", "OrderStatus", "OrderType", "OrderUpdated", "OrderView", "OrdersFound",
    "PermitGranted", "PermitRefused", "PlaceOrder", "PositionAdopted", "PositionProtected",
    "Price", "PriceRejected", "PricesProcessed", "PricesUpdated", "Priority", "Product",
    "ProtectPosition", "ProtectionFailed", "ProtectionRemoved", "QueryOrder", "Reconcile",
    "ReconcilePosition", "ReconcileSkipped", "Reconciled", "RecordPrices", "ReleaseCash",
    "RemoveProtection", "RequestPermit", "ReserveCash", "ResumeTrading", "SagaCompensated",
    "SagaCompleted", "SagaKind", "SagaRefused", "SagaStarted", "SagaView", "SagasDescribed",
    "SetTradingState", "Side", "StrategyFill", "SubmitEntry", "SubmitExit", "Subscribe",
    "SyncCheck", "TradingState", "TradingStateChanged", "encode_scalar", "from_dict", "to_dict",
]
