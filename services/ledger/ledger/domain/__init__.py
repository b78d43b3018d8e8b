"""The ledger's pure domain: periods, events, the ServiceLedger aggregate and its projections. No I/O."""

from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.errors import (
    InconsistentStream,
    InvalidLedgerEvent,
    LedgerError,
    OpeningBalanceConflict,
    UnknownPayment,
)
from ledger.domain.events import (
    EVENT_TYPES,
    AccrualPosted,
    CorrectionPosted,
    LedgerEvent,
    OpeningBalanceSet,
    PaymentReceived,
    PaymentReversed,
)
from ledger.domain.payments import PaymentLine, PaymentsView, payment_lines
from ledger.domain.period import ALMATY, Period, period_of_instant
from ledger.domain.periods import PeriodBalances, PeriodRow, period_table

__all__ = [
    "ALMATY",
    "EVENT_TYPES",
    "AccrualPosted",
    "CorrectionPosted",
    "InconsistentStream",
    "InvalidLedgerEvent",
    "LedgerError",
    "LedgerEvent",
    "OpeningBalanceConflict",
    "OpeningBalanceSet",
    "PaymentLine",
    "PaymentReceived",
    "PaymentReversed",
    "PaymentsView",
    "Period",
    "PeriodBalances",
    "PeriodRow",
    "ServiceLedger",
    "UnknownPayment",
    "payment_lines",
    "period_of_instant",
    "period_table",
]
