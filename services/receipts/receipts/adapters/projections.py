"""Receipts' projections of the other services' events. Each is rebuilt with
`python -m receipts.worker rebuild <name>`; a rebuild never touches the bills already issued.

- `accounts`: the register as receipts needs it (address, flags, effective-dated payer, residents and
  tariff option, meters) and the district offices;
- `account-links`: who may see which account (an unlinked account is a 404 in the API);
- `ledger`: every accrual, correction and payment, and per account, service and month the money
  figures, re-rolled from those entries whenever a stream changes (late events included);
- `calculator`: the tariff catalog and VAT rates, readings, charges with their rating lines, and the
  periods whose charges are all posted (PeriodBilled).

After a batch, the accounts, ledger and calculator projections try to issue the bills of the accounts
the batch touched (`application.issuing.issue_ready_bills`): a bill is issued when PeriodBilled, the
ledger's AccrualPosted and the calculator's ChargeCalculated for each of its charges, and the account
itself have all arrived, in whatever order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.events import ledger as led
from receipts.application.issuing import issue_ready_bills
from receipts.domain.balances import Entry, period_table
from service_runtime.consumers import CanonicalEvent, Projection
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore

log = logging.getLogger(__name__)


class _IssuingProjection(Projection):
    """A projection after whose batches the touched accounts' bills are issued when ready."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        await self.apply_batch(conn, [event])

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        touched = await self._apply_many(conn, events)
        if touched:
            await issue_ready_bills(conn, self._store, touched)

    async def _apply_many(self, conn: Connection, events: Sequence[CanonicalEvent]) -> set[str]:
        """Apply the events in order; return the accounts whose bills they may complete."""
        touched: set[str] = set()
        for event in events:
            account_no = await self._apply_one(conn, event)
            if account_no:
                touched.add(account_no)
        return touched

    async def _apply_one(self, conn: Connection, event: CanonicalEvent) -> str | None:
        """Apply the event; return the account whose bills it may complete (None if none)."""
        raise NotImplementedError


# --- accounts ---------------------------------------------------------------------------------------
class AccountsProjection(_IssuingProjection):
    name: ClassVar[str] = "accounts"
    topics: ClassVar[tuple[str, ...]] = (acc.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset(
        {
            "AccountOpened",
            "MeterInstalled",
            "MeterReplaced",
            "ResidentsChanged",
            "TariffOptionChanged",
            "PayerChanged",
            "DistrictOfficeChanged",
        }
    )

    async def _apply_one(self, conn: Connection, event: CanonicalEvent) -> str | None:
        p = event.payload
        version = event.envelope.stream_version
        match p:
            case acc.AccountOpened():
                await conn.execute(
                    "INSERT INTO accounts (account_no, address, electric_stove, living_alone,"
                    " district_office_code, opened_on) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (account_no) DO UPDATE SET address = excluded.address,"
                    " electric_stove = excluded.electric_stove, living_alone = excluded.living_alone,"
                    " district_office_code = excluded.district_office_code, opened_on = excluded.opened_on",
                    (
                        p.account_no,
                        p.address,
                        p.electric_stove,
                        p.living_alone,
                        p.district_office_code,
                        p.opened_on,
                    ),
                )
                for name, value in (
                    ("payer_name", p.payer_name),
                    ("residents", str(p.residents)),
                    ("tariff_option", p.tariff_option),
                ):
                    await _attribute(conn, p.account_no, name, version, p.opened_on, value)
                return str(p.account_no)
            case acc.ResidentsChanged():
                await _attribute(conn, p.account_no, "residents", version, p.effective_from, str(p.residents))
            case acc.TariffOptionChanged():
                await _attribute(
                    conn, p.account_no, "tariff_option", version, p.effective_from, p.tariff_option
                )
            case acc.PayerChanged():
                await _attribute(conn, p.account_no, "payer_name", version, p.effective_from, p.payer_name)
            case acc.MeterInstalled():
                await conn.execute(
                    "INSERT INTO meters (account_no, serial, digits, installed_on, initial_reading)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_no, serial, installed_on) DO UPDATE"
                    " SET digits = excluded.digits, initial_reading = excluded.initial_reading",
                    (p.account_no, p.serial, p.digits, p.installed_on, p.initial_reading),
                )
            case acc.MeterReplaced():
                await conn.execute(
                    "UPDATE meters SET removed_on = %s, final_reading = %s"
                    " WHERE account_no = %s AND serial = %s AND removed_on IS NULL",
                    (p.replaced_on, p.final_reading, p.account_no, p.old_serial),
                )
            case acc.DistrictOfficeChanged():
                await conn.execute(
                    "INSERT INTO district_offices (code, name, address, phone, hours) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (code) DO UPDATE SET name = excluded.name, address = excluded.address,"
                    " phone = excluded.phone, hours = excluded.hours",
                    (p.code, p.name, p.address, p.phone, p.hours),
                )
        return None

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE accounts, account_attributes, meters, district_offices")


async def _attribute(
    conn: Connection, account_no: str, name: str, version: int, effective_from: object, value: str
) -> None:
    await conn.execute(
        "INSERT INTO account_attributes (account_no, name, version, effective_from, value)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_no, name, version) DO UPDATE"
        " SET effective_from = excluded.effective_from, value = excluded.value",
        (account_no, name, version, effective_from, value),
    )


class LinksProjection(Projection):
    name: ClassVar[str] = "account-links"
    topics: ClassVar[tuple[str, ...]] = (acc.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"AccountLinked", "AccountUnlinked"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        assert isinstance(p, acc.AccountLinked | acc.AccountUnlinked)
        await conn.execute(
            "INSERT INTO account_links (account_no, user_id, linked) VALUES (%s, %s, %s)"
            " ON CONFLICT (account_no, user_id) DO UPDATE SET linked = excluded.linked",
            (p.account_no, p.user_id, isinstance(p, acc.AccountLinked)),
        )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE account_links")


# --- ledger -----------------------------------------------------------------------------------------
# A batch's entries in one multi-row upsert (array parameters; the last event of a key wins, as applied
# one by one), the touched streams' months re-rolled with one read and one upsert.
_UPSERT_ENTRIES = (
    "INSERT INTO ledger_entries (account_no, service_code, kind, item_id, period, amount, entry_date, bank,"
    " reason, tariff, estimated, stream_version) SELECT * FROM unnest(%b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::numeric[], %b::date[], %b::text[], %b::text[], %b::text[], %b::bool[],"
    " %b::int[]) ON CONFLICT (account_no, service_code, kind, item_id) DO UPDATE SET period = excluded.period,"
    " amount = excluded.amount, entry_date = excluded.entry_date, bank = excluded.bank,"
    " reason = excluded.reason, tariff = excluded.tariff, estimated = excluded.estimated,"
    " stream_version = excluded.stream_version"
)
_EntryKey = tuple[str, str, str, str]  # account_no, service_code, kind, item_id


def _entry_row(p: Any, v: int) -> tuple[Any, ...] | None:
    """The `ledger_entries` row of an event (None for a PaymentReversed or an unknown event)."""
    match p:
        case led.OpeningBalanceSet():
            return (p.account_no, p.service_code, "opening", "opening", p.period, p.amount,
                    None, None, None, None, False, v)  # fmt: skip
        case led.AccrualPosted():
            return (p.account_no, p.service_code, "accrual", p.charge_id, p.period, p.amount,
                    None, None, None, p.tariff, p.estimated, v)  # fmt: skip
        case led.CorrectionPosted():
            return (p.account_no, p.service_code, "correction", p.correction_id, p.period, p.amount,
                    None, None, p.reason, None, False, v)  # fmt: skip
        case led.PaymentReceived():
            return (p.account_no, p.service_code, "payment", p.payment_id, p.period, p.amount,
                    p.paid_on, p.bank, None, None, False, v)  # fmt: skip
    return None


async def _upsert_entries(conn: Connection, rows: dict[_EntryKey, tuple[Any, ...]]) -> None:
    if rows:
        await conn.execute(_UPSERT_ENTRIES, [list(column) for column in zip(*rows.values(), strict=True)])


class LedgerProjection(_IssuingProjection):
    name: ClassVar[str] = "ledger"
    topics: ClassVar[tuple[str, ...]] = (led.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset(
        {"OpeningBalanceSet", "AccrualPosted", "CorrectionPosted", "PaymentReceived", "PaymentReversed"}
    )

    async def _apply_many(self, conn: Connection, events: Sequence[CanonicalEvent]) -> set[str]:
        pending: dict[_EntryKey, tuple[Any, ...]] = {}
        streams: set[tuple[str, str]] = set()
        touched: set[str] = set()
        for event in events:
            p = event.payload
            if isinstance(p, led.PaymentReversed):
                await _upsert_entries(conn, pending)  # the payment first, if it is in this batch
                pending = {}
                await conn.execute(
                    "UPDATE ledger_entries SET reversed = true, reason = %s WHERE account_no = %s"
                    " AND service_code = %s AND kind = 'payment' AND item_id = %s",
                    (p.reason, p.account_no, p.service_code, p.payment_id),
                )
            else:
                row = _entry_row(p, event.envelope.stream_version)
                if row is None:
                    continue
                pending[(row[0], row[1], row[2], row[3])] = row
                if isinstance(p, led.AccrualPosted):
                    touched.add(str(p.account_no))
            streams.add((str(p.account_no), str(p.service_code)))
        await _upsert_entries(conn, pending)
        await reroll_many(conn, streams)
        return touched

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE ledger_entries, service_periods")


async def reroll_service_periods(conn: Connection, account_no: str, service_code: str) -> None:
    """Recompute every month of one account's service from its entries (so a late event re-rolls them)."""
    await reroll_many(conn, {(account_no, service_code)})


async def reroll_many(conn: Connection, streams: set[tuple[str, str]]) -> None:
    """Recompute every month of these (account, service) streams from their entries: one pipelined read of
    their entries and stored months, then only what changed is written (one upsert, and a delete of months
    no longer named, which entries never do but a rebuild could)."""
    if not streams:
        return
    keys = sorted(streams)
    accounts, services = [k[0] for k in keys], [k[1] for k in keys]
    async with conn.pipeline():
        entry_cur = await conn.execute(
            "SELECT e.account_no, e.service_code, e.kind, e.period, e.amount, e.reversed"
            " FROM unnest(%b::text[], %b::text[]) AS k(a, s)"
            " JOIN ledger_entries e ON e.account_no = k.a AND e.service_code = k.s",
            (accounts, services),
        )
        stored_cur = await conn.execute(
            "SELECT p.account_no, p.service_code, p.period, p.opening_balance, p.accrued, p.corrections,"
            " p.paid, p.closing_balance FROM unnest(%b::text[], %b::text[]) AS k(a, s)"
            " JOIN service_periods p ON p.account_no = k.a AND p.service_code = k.s",
            (accounts, services),
        )
    entries: dict[tuple[str, str], list[Entry]] = {}
    for a, s, kind, period, amount, reversed_ in await entry_cur.fetchall():
        entries.setdefault((a, s), []).append(Entry(kind, period, amount, reversed_))
    stored: dict[tuple[str, str, str], tuple[Any, ...]] = {
        (a, s, p): tuple(rest) for a, s, p, *rest in await stored_cur.fetchall()
    }
    upserts: list[tuple[Any, ...]] = []
    for a, s in keys:
        for r in period_table(entries.get((a, s), ())):
            values = (r.opening_balance, r.accrued, r.corrections, r.paid, r.closing_balance)
            if stored.pop((a, s, r.period), None) != values:
                upserts.append((a, s, r.period, *values))
    if stored:  # months no longer named
        gone = list(stored)
        await conn.execute(
            "DELETE FROM service_periods p USING unnest(%b::text[], %b::text[], %b::text[]) AS k(a, s, m)"
            " WHERE p.account_no = k.a AND p.service_code = k.s AND p.period = k.m",
            ([g[0] for g in gone], [g[1] for g in gone], [g[2] for g in gone]),
        )
    if upserts:
        await conn.execute(
            "INSERT INTO service_periods (account_no, service_code, period, opening_balance, accrued,"
            " corrections, paid, closing_balance) SELECT * FROM unnest(%b::text[], %b::text[], %b::text[],"
            " %b::numeric[], %b::numeric[], %b::numeric[], %b::numeric[], %b::numeric[])"
            " ON CONFLICT (account_no, service_code, period) DO UPDATE SET"
            " opening_balance = excluded.opening_balance, accrued = excluded.accrued,"
            " corrections = excluded.corrections, paid = excluded.paid,"
            " closing_balance = excluded.closing_balance",
            [list(column) for column in zip(*upserts, strict=True)],
        )


# --- calculator -------------------------------------------------------------------------------------
class CalculatorProjection(_IssuingProjection):
    name: ClassVar[str] = "calculator"
    topics: ClassVar[tuple[str, ...]] = (calc.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset(
        {"TariffPublished", "VatRateChanged", "ReadingSubmitted", "ChargeCalculated", "PeriodBilled"}
    )

    async def _apply_many(self, conn: Connection, events: Sequence[CanonicalEvent]) -> set[str]:
        """Readings, charges and billed periods in one multi-row statement each (each table's rows keep
        the result of applying the events in order: the first reading of a key, the last charge and
        PeriodBilled); the tariff catalog, rare, event by event."""
        readings: dict[tuple[str, str], tuple[Any, ...]] = {}
        charges: dict[tuple[str, str], tuple[Any, ...]] = {}
        billed: dict[tuple[str, str], tuple[Any, ...]] = {}
        touched: set[str] = set()
        for event in events:
            p = event.payload
            match p:
                case calc.ReadingSubmitted():
                    readings.setdefault(
                        (p.account_no, p.reading_id),
                        (p.account_no, p.reading_id, p.meter_serial, p.reading_date, p.value, p.source),
                    )
                case calc.ChargeCalculated():
                    charges[(p.account_no, p.charge_id)] = (
                        p.account_no,
                        p.charge_id,
                        p.service_code,
                        p.period,
                        p.model_dump_json(),
                    )
                    touched.add(str(p.account_no))
                case calc.PeriodBilled():
                    billed[(p.account_no, p.period)] = (
                        p.account_no,
                        p.period,
                        orjson.dumps(p.charge_ids).decode(),
                        event.envelope.occurred_at,
                    )
                    touched.add(str(p.account_no))
                case _:
                    await self._apply_one(conn, event)
        if readings:
            await conn.execute(
                "INSERT INTO readings (account_no, reading_id, meter_serial, reading_date, value, source)"
                " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::date[], %b::numeric[],"
                " %b::text[]) ON CONFLICT (account_no, reading_id) DO NOTHING",
                [list(column) for column in zip(*readings.values(), strict=True)],
            )
        if charges:
            await conn.execute(
                "INSERT INTO charges (account_no, charge_id, service_code, period, charge)"
                " SELECT a, c, s, p, j::jsonb FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
                " %b::text[]) AS k(a, c, s, p, j) ON CONFLICT (account_no, charge_id) DO UPDATE"
                " SET service_code = excluded.service_code, period = excluded.period, charge = excluded.charge",
                [list(column) for column in zip(*charges.values(), strict=True)],
            )
        if billed:
            await conn.execute(
                "INSERT INTO billed_periods (account_no, period, charge_ids, billed_at)"
                " SELECT a, p, j::jsonb, t FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[])"
                " AS k(a, p, j, t) ON CONFLICT (account_no, period) DO UPDATE"
                " SET charge_ids = excluded.charge_ids, billed_at = excluded.billed_at",
                [list(column) for column in zip(*billed.values(), strict=True)],
            )
        return touched

    async def _apply_one(self, conn: Connection, event: CanonicalEvent) -> str | None:
        """The tariff catalog's events (readings, charges and billed periods go through `_apply_many`)."""
        p = event.payload
        match p:
            case calc.TariffPublished():
                await conn.execute(
                    "INSERT INTO tariff_rows (effective_from, flat, tier1, tier2, tier3, norms)"
                    " VALUES (%s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (effective_from) DO UPDATE"
                    " SET flat = excluded.flat, tier1 = excluded.tier1, tier2 = excluded.tier2,"
                    " tier3 = excluded.tier3, norms = excluded.norms",
                    (
                        p.effective_from,
                        p.flat,
                        p.tier1,
                        p.tier2,
                        p.tier3,
                        orjson.dumps([n.model_dump(mode="json") for n in p.norms]).decode(),
                    ),
                )
            case calc.VatRateChanged():
                await conn.execute(
                    "INSERT INTO vat_rates (effective_from, rate) VALUES (%s, %s)"
                    " ON CONFLICT (effective_from) DO UPDATE SET rate = excluded.rate",
                    (p.effective_from, p.rate),
                )
        return None

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE tariff_rows, vat_rates, readings, charges, billed_periods")
