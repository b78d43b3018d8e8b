"""Property tests of the ledger domain over random back-office deliveries.

A "world" is a set of distinct facts: an optional opening balance, accruals, corrections, payments,
and reversals of some payments. It is delivered to the aggregate as commands, with redeliveries
(exact duplicates), conflicting duplicates (the same charge/correction/payment id with other values:
the first delivered wins) and in any order. A reversal delivered before its payment raises
UnknownPayment and is parked, then retried once the payment is received, as the application does.

The expected figures are computed here from the generated integers (tiyn), never with the code
under test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger.adapters.codec import movement_of, to_contract
from ledger.domain.account_ledger import ServiceLedger
from ledger.domain.errors import UnknownPayment
from ledger.domain.events import LedgerEvent, PaymentReceived, PaymentReversed
from ledger.domain.payments import PaymentLine, PaymentsView, payment_lines
from ledger.domain.period import Period
from ledger.domain.periods import PeriodBalances, PeriodRow, period_table
from ledger.domain.sheet import Movement, PeriodSheet, TiynRow

FIRST_DAY, LAST_DAY = date(2023, 10, 1), date(2025, 5, 31)
PERIODS = list(Period.span(Period.of_date(FIRST_DAY), Period.of_date(LAST_DAY)))
ACCOUNT, SERVICE = "100200300401", "electricity"


def money(tiyn: int) -> Decimal:
    """Generated amounts are integers of tiyn; built here without contracts.money."""
    return Decimal(tiyn).scaleb(-2)


# --- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    period: Period
    tiyn: int


@dataclass(frozen=True)
class Accrue:
    charge_id: str
    period: Period
    tiyn: int
    tariff: str | None
    kwh: int
    estimated: bool


@dataclass(frozen=True)
class Correct:
    correction_id: str
    period: Period
    tiyn: int
    reason: str


@dataclass(frozen=True)
class Pay:
    payment_id: str
    paid_on: date
    tiyn: int
    bank: str


@dataclass(frozen=True)
class Reverse:
    payment_id: str
    reason: str


Command = Open | Accrue | Correct | Pay | Reverse


def key(command: Command) -> tuple[str, str]:
    """The identity the ledger dedupes on."""
    match command:
        case Open():
            return ("open", "")
        case Accrue():
            return ("accrual", command.charge_id)
        case Correct():
            return ("correction", command.correction_id)
        case Pay():
            return ("payment", command.payment_id)
        case Reverse():
            return ("reversal", command.payment_id)


def run(ledger: ServiceLedger, command: Command) -> list[LedgerEvent]:
    match command:
        case Open():
            return ledger.set_opening_balance(command.period, money(command.tiyn))
        case Accrue():
            return ledger.post_accrual(
                command.charge_id, command.period, money(command.tiyn), command.tariff, money(command.kwh),
                command.estimated,
            )  # fmt: skip
        case Correct():
            return ledger.post_correction(
                command.correction_id, command.period, money(command.tiyn), command.reason
            )
        case Pay():
            return ledger.receive_payment(
                command.payment_id, command.paid_on, money(command.tiyn), command.bank
            )
        case Reverse():
            return ledger.reverse_payment(command.payment_id, command.reason)


def deliver(delivery: Iterable[Command]) -> tuple[ServiceLedger, list[LedgerEvent]]:
    """Feed the aggregate like the application: park a reversal of an unknown payment, retry it once
    the payment is received. Returns the aggregate and the stream it produced."""
    ledger = ServiceLedger(ACCOUNT, SERVICE)
    stream: list[LedgerEvent] = []
    parked: list[Reverse] = []
    for command in delivery:
        try:
            stream += run(ledger, command)
        except UnknownPayment:
            assert isinstance(command, Reverse)
            event("a reversal arrived before its payment")
            parked.append(command)
        if isinstance(command, Pay):
            for waiting in [p for p in parked if p.payment_id == command.payment_id]:
                parked.remove(waiting)
                stream += run(ledger, waiting)
    assert parked == [], "every reversal's payment was delivered"
    return ledger, stream


# --- worlds --------------------------------------------------------------------------------------

periods = st.sampled_from(PERIODS)
days = st.dates(FIRST_DAY, LAST_DAY)
# Huge: up to 10 billion tenge (10**12 tiyn), the largest amount the application accepts. A stream's
# totals must stay under STORED_LIMIT (10**12 tenge, the read models' NUMERIC(14,2)), which the few
# facts of a world at most 10 billion each always do (test_ledger_aggregate covers the limit itself).
HUGE = 10**12
small_or_huge = st.one_of(st.integers(0, 10**7), st.integers(0, HUGE))


def tariff_of(period: Period) -> str:
    return f"{period} 31.85 ₸/кВт·ч"


@st.composite
def worlds(draw: st.DrawFn, *, conflicting: bool = True, fixed_tariffs: bool = False) -> list[Command]:
    """A delivery: every fact at least once, maybe conflicting variants and redeliveries, shuffled."""
    variants = st.integers(1, 3 if conflicting else 1)
    commands: list[Command] = []
    if draw(st.booleans()):
        commands.append(Open(draw(periods), draw(st.integers(-(10**8), 10**8))))
    for i in range(draw(st.integers(0, 8))):
        for _ in range(draw(variants)):
            period = draw(periods)
            tariff = (
                tariff_of(period) if fixed_tariffs else draw(st.none() | st.sampled_from(["flat", "tiered"]))
            )
            commands.append(
                Accrue(
                    f"CH-{i}",
                    period,
                    draw(small_or_huge),
                    tariff,
                    draw(st.integers(0, 10**6)),
                    draw(st.booleans()),
                )
            )
    for i in range(draw(st.integers(0, 6))):
        for _ in range(draw(variants)):
            amount = draw(st.one_of(st.integers(-(10**7), 10**7), st.integers(-HUGE, HUGE)))
            commands.append(Correct(f"COR-{i}", draw(periods), amount, "recount"))
    for i in range(draw(st.integers(0, 8))):
        for _ in range(draw(variants)):
            amount = draw(st.one_of(st.integers(1, 10**7), st.integers(1, HUGE)))
            commands.append(Pay(f"P-{i}", draw(days), amount, draw(st.sampled_from(["Halyk", "Kaspi"]))))
        if draw(st.booleans()):
            commands.append(Reverse(f"P-{i}", "cancelled"))
    if commands:
        commands += draw(st.lists(st.sampled_from(commands), max_size=6))  # redeliveries
    return draw(st.permutations(commands))


@dataclass
class Expected:
    opening: int
    named: set[Period]
    accrued: dict[Period, int]
    corrections: dict[Period, int]
    paid: dict[Period, int]
    payments: list[PaymentLine]


def expected_of(delivery: Sequence[Command]) -> Expected:
    """What the ledger must show: the first delivered variant of every id, reversals removing paid."""
    first: dict[tuple[str, str], Command] = {}
    for command in delivery:
        if key(command) in first:
            known = first[key(command)]
            event("an exact redelivery" if known == command else "a duplicate id with other values")
        else:
            first[key(command)] = command
    reversed_ids = {c.payment_id for c in first.values() if isinstance(c, Reverse)}
    expected = Expected(0, set(), defaultdict(int), defaultdict(int), defaultdict(int), [])
    for command in first.values():
        match command:
            case Open():
                expected.opening = command.tiyn
                expected.named.add(command.period)
            case Accrue():
                expected.accrued[command.period] += command.tiyn
                expected.named.add(command.period)
            case Correct():
                expected.corrections[command.period] += command.tiyn
                expected.named.add(command.period)
            case Pay():
                period = Period(command.paid_on.year, command.paid_on.month)
                expected.named.add(period)
                reversed_ = command.payment_id in reversed_ids
                if not reversed_:
                    expected.paid[period] += command.tiyn
                expected.payments.append(
                    PaymentLine(
                        command.payment_id, command.paid_on, money(command.tiyn), command.bank, reversed_
                    )
                )
    expected.payments.sort(key=lambda line: (line.paid_on, line.payment_id))
    return expected


def tiyn(value: Decimal) -> int:
    scaled = value.scaleb(2)
    assert scaled == scaled.to_integral_value(), f"{value} is not whole tiyn"
    assert value.as_tuple().exponent == -2, f"{value} does not have exactly two decimals"
    return int(scaled)


def by_period(rows: Sequence[PeriodRow]) -> dict[Period, PeriodRow]:
    return {row.period: row for row in rows}


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_invariants_hold_and_totals_equal_the_distinct_inputs_exactly(delivery: list[Command]) -> None:
    _, stream = deliver(delivery)
    rows = period_table(stream)
    expected = expected_of(delivery)
    named = [e.period for e in stream if hasattr(e, "period")]
    if any(p < max(named[:i]) for i, p in enumerate(named) if i):
        event("a late event for a past month")

    if not expected.named:
        assert rows == []
        return
    assert [row.period for row in rows] == list(Period.span(min(expected.named), max(expected.named)))
    assert tiyn(rows[0].opening_balance) == expected.opening
    for previous, row in zip([None, *rows], rows, strict=False):
        # (a) closing = opening + accrued + corrections - paid
        assert tiyn(row.closing_balance) == (
            tiyn(row.opening_balance) + tiyn(row.accrued) + tiyn(row.corrections) - tiyn(row.paid)
        )
        # (b) each opening = the previous closing
        if previous is not None:
            assert row.opening_balance == previous.closing_balance
        # (c) per period, exactly the distinct non-reversed inputs
        assert tiyn(row.accrued) == expected.accrued.get(row.period, 0)
        assert tiyn(row.corrections) == expected.corrections.get(row.period, 0)
        assert tiyn(row.paid) == expected.paid.get(row.period, 0)
    # (c) and in total
    assert sum(tiyn(r.accrued) for r in rows) == sum(expected.accrued.values())
    assert sum(tiyn(r.corrections) for r in rows) == sum(expected.corrections.values())
    assert sum(tiyn(r.paid) for r in rows) == sum(expected.paid.values())
    assert tiyn(rows[-1].closing_balance) == (
        expected.opening
        + sum(expected.accrued.values())
        + sum(expected.corrections.values())
        - sum(expected.paid.values())
    )
    assert payment_lines(stream) == expected.payments


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_incremental_equals_rebuild_after_every_event(delivery: list[Command]) -> None:
    _, stream = deliver(delivery)
    balances = PeriodBalances()
    view = PaymentsView()
    before: dict[Period, PeriodRow] = {}
    for n, ledger_event in enumerate(stream, start=1):
        changed = balances.apply(ledger_event)
        view.apply(ledger_event)
        rebuilt = period_table(stream[:n])
        assert balances.rows() == rebuilt
        after = by_period(rebuilt)
        # the changed months are exactly the rows that appeared or differ
        assert changed == tuple(sorted(p for p, row in after.items() if before.get(p) != row))
        before = after
    assert view.lines() == payment_lines(stream)
    assert balances.balance == (rebuilt[-1].closing_balance if stream else Decimal("0.00"))


@settings(max_examples=200, deadline=None)
@given(worlds(), st.data())
def test_rebuilt_aggregate_ignores_every_redelivery(delivery: list[Command], data: st.DataObject) -> None:
    ledger, stream = deliver(delivery)
    rebuilt = ServiceLedger.from_history(ACCOUNT, SERVICE, stream)
    assert rebuilt == ledger
    assert rebuilt.version == len(stream)
    for command in data.draw(st.permutations(delivery)):
        assert run(rebuilt, command) == []


@settings(max_examples=200, deadline=None)
@given(worlds(conflicting=False, fixed_tariffs=True), st.data())
def test_any_delivery_order_gives_the_same_tables(delivery: list[Command], data: st.DataObject) -> None:
    _, stream = deliver(delivery)
    _, other_stream = deliver(data.draw(st.permutations(delivery)))
    end = data.draw(st.sampled_from(PERIODS))
    assert period_table(other_stream) == period_table(stream)
    assert period_table(other_stream, to_period=end) == period_table(stream, to_period=end)
    assert PeriodBalances.from_events(other_stream).rows() == period_table(stream)
    assert payment_lines(other_stream) == payment_lines(stream)


@settings(max_examples=200, deadline=None)
@given(worlds(), periods, periods)
def test_rows_window_is_a_slice_of_the_extended_table(
    delivery: list[Command], from_period: Period, to_period: Period
) -> None:
    _, stream = deliver(delivery)
    balances = PeriodBalances.from_events(stream)
    last = balances.last_period
    full = period_table(stream) if last is None else period_table(stream, to_period=max(last, to_period))
    window = [row for row in full if from_period <= row.period <= to_period]
    assert balances.rows(from_period, to_period) == window
    assert period_table(stream, from_period, to_period) == window
    if window:
        assert window[-1].period == to_period
        # the months after the last active one carry the balance with no movement
        for row in window:
            if last is not None and row.period > last:
                assert (row.accrued, row.corrections, row.paid) == (0, 0, 0)
                assert row.opening_balance == row.closing_balance == balances.balance


@settings(max_examples=200, deadline=None)
@given(worlds(), days, days)
def test_payments_window_filters_by_date(delivery: list[Command], start: date, end: date) -> None:
    _, stream = deliver(delivery)
    every = payment_lines(stream)
    assert payment_lines(stream, start, end) == [line for line in every if start <= line.paid_on <= end]


@given(st.integers(1, 9999), st.integers(1, 12))
def test_period_round_trips_and_steps(year: int, month: int) -> None:
    period = Period(year, month)
    assert Period.parse(str(period)) == period
    if period != Period(9999, 12):
        assert period.next().prev() == period
        assert period.next().ordinal == period.ordinal + 1
        assert period < period.next()
    if period != Period(1, 1):
        assert period.prev().next() == period
    assert Period.of_date(period.first_day) == Period.of_date(period.last_day) == period


# --- the stored-rows re-roll of the read model ---------------------------------------------------


def canonical_movements(stream: Sequence[LedgerEvent]) -> list[Movement]:
    """The stream as the projection sees it: canonical payloads (a reversal carries its payment's month
    and amount) turned into movements."""
    received: dict[str, PaymentReceived] = {}
    movements = []
    for ledger_event in stream:
        if isinstance(ledger_event, PaymentReceived):
            received[ledger_event.payment_id] = ledger_event
        reversed_payment = (
            received[ledger_event.payment_id] if isinstance(ledger_event, PaymentReversed) else None
        )
        movements.append(movement_of(to_contract(ACCOUNT, SERVICE, ledger_event, reversed_payment)))
    return movements


@settings(max_examples=300, deadline=None)
@given(worlds(), st.data())
def test_stored_rows_rerolled_batch_by_batch_equal_the_fold(
    delivery: list[Command], data: st.DataObject
) -> None:
    """What `ledger_periods` holds after any split of the stream into batches, each applied to the rows
    stored by the previous ones, is `period_table` of the stream so far; and each batch writes exactly
    the rows that appeared or changed."""
    _, stream = deliver(delivery)
    movements = canonical_movements(stream)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=6))))
    stored: dict[Period, PeriodRow] = {}
    start = 0
    for cut in [*cuts, len(stream)]:
        batch = movements[start:cut]
        sheet = PeriodSheet(stored.values()).apply_all(batch)
        # what the projection loads: the first and last rows, and every row from the earliest month
        # the batch touches (all of them when it opens the stream)
        since = min((m.period for m in batch), default=None)
        if any(m.opening is not None for m in batch):
            since = min(stored, default=None)
        ends = {min(stored), max(stored)} if stored else set()
        loaded = [
            TiynRow.of(row) for p, row in stored.items() if p in ends or (since is not None and p >= since)
        ]
        partial = PeriodSheet.partial(loaded).apply_all(batch)
        changed = sheet.changed_rows()
        expected = period_table(stream[:cut])
        assert changed == [row for row in expected if stored.get(row.period) != row]
        assert partial.changed_rows() == changed
        stored.update({row.period: row for row in changed})
        assert sorted(stored.values(), key=lambda r: r.period) == expected
        balance = tiyn(expected[-1].closing_balance) if expected else 0
        assert sheet.balance == partial.balance == balance
        if len(batch) > 1:
            event("a batch of several events")
        start = cut
