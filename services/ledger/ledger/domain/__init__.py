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
from ledger.domain.period import ALMATY, Period, parse_period, period_of_instant, period_of_ordinal
from ledger.domain.periods import PeriodBalances, PeriodRow, period_table
from ledger.domain.sheet import Movement, PeriodSheet, TiynRow, reroll
from ledger.domain.statement import months_between, window
from ledger.domain.tariffs import RatedLine, format_rate, tariff_text

__all__ = [
    "ALMATY",
    "EVENT_TYPES",
    "AccrualPosted",
    "CorrectionPosted",
    "InconsistentStream",
    "InvalidLedgerEvent",
    "LedgerError",
    "LedgerEvent",
    "Movement",
    "OpeningBalanceConflict",
    "OpeningBalanceSet",
    "PaymentLine",
    "PaymentReceived",
    "PaymentReversed",
    "PaymentsView",
    "Period",
    "PeriodBalances",
    "PeriodRow",
    "PeriodSheet",
    "RatedLine",
    "ServiceLedger",
    "TiynRow",
    "UnknownPayment",
    "format_rate",
    "months_between",
    "parse_period",
    "payment_lines",
    "period_of_instant",
    "period_of_ordinal",
    "period_table",
    "reroll",
    "tariff_text",
    "window",
]
