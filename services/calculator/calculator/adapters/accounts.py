"""Calculator's projection of accounts' events: the attributes rating reads, meters, and user links.

Attributes are kept with their effective dates (`account_attributes`), so rating reads them as they
stand on a reading's date (`domain.reconcile.household_on`: the row with the latest `effective_from` on
or before the day, the latest event among equal dates, else the earliest one: the opening values).

These events may arrive after readings they apply to were rated (BACKOFFICE_EVENTS.md: no order across
topics). A ResidentsChanged, TariffOptionChanged or MeterReplaced therefore also asks for the account's
charges to be reconciled (`request_reconcile`, in the same transaction): the reconciler re-rates them
with the facts known now and posts the differences (`application.charges.ReconcileService`). A new
account (or a changed opening date) is left `billing_synced = false`, so the billing-run loop adds it to
the runs of every closed period it was active in, however late it arrives.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import orjson
from psycopg.types.json import Jsonb

from calculator.domain.billing import Meter, current_meter
from calculator.domain.reconcile import AccountFacts, AttributeRow, ChainReading, Household
from calculator.domain.reconcile import household_on as household_on_rows
from contracts.events import accounts as ev
from service_runtime.consumers import CanonicalEvent, Projection
from service_runtime.db import Connection

log = logging.getLogger(__name__)

# Called after a meter (or an account) arrives, to apply the grid readings parked for it.
MeterArrived = Callable[[Connection, str], Awaitable[None]]


class AccountsProjection(Projection):
    name: ClassVar[str] = "accounts"
    topics: ClassVar[tuple[str, ...]] = (ev.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset(
        {
            "AccountOpened",
            "MeterInstalled",
            "MeterReplaced",
            "ResidentsChanged",
            "TariffOptionChanged",
            "AccountLinked",
            "AccountUnlinked",
        }
    )

    def __init__(self, on_meter: MeterArrived | None = None) -> None:
        self._on_meter = on_meter

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        version = event.envelope.stream_version
        if isinstance(p, ev.AccountOpened):
            await conn.execute(
                "INSERT INTO accounts (account_no, opened_on, registered_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (account_no) DO UPDATE SET opened_on = excluded.opened_on,"
                " billing_synced = accounts.billing_synced AND accounts.opened_on = excluded.opened_on",
                (p.account_no, p.opened_on, event.envelope.occurred_at),
            )
            for attribute, value in (
                ("residents", p.residents),
                ("tariff_option", p.tariff_option),
                ("electric_stove", p.electric_stove),
                ("living_alone", p.living_alone),
            ):
                await _set_attribute(conn, p.account_no, attribute, p.opened_on, version, value)
        elif isinstance(p, ev.ResidentsChanged):
            await _set_attribute(conn, p.account_no, "residents", p.effective_from, version, p.residents)
            await request_reconcile(conn, [p.account_no])
        elif isinstance(p, ev.TariffOptionChanged):
            await _set_attribute(
                conn, p.account_no, "tariff_option", p.effective_from, version, p.tariff_option
            )
            await request_reconcile(conn, [p.account_no])
        elif isinstance(p, ev.MeterInstalled):
            await conn.execute(
                "INSERT INTO meters (account_no, serial, digits, installed_on, initial_reading)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_no, serial) DO UPDATE SET"
                " digits = excluded.digits, installed_on = excluded.installed_on,"
                " initial_reading = excluded.initial_reading",
                (p.account_no, p.serial, p.digits, p.installed_on, p.initial_reading),
            )
        elif isinstance(p, ev.MeterReplaced):
            await conn.execute(
                "UPDATE meters SET removed_on = %s, final_reading = %s WHERE account_no = %s AND serial = %s",
                (p.replaced_on, p.final_reading, p.account_no, p.old_serial),
            )
            await conn.execute(
                "INSERT INTO meters (account_no, serial, digits, installed_on, initial_reading)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (account_no, serial) DO NOTHING",
                (p.account_no, p.new_serial, p.digits, p.replaced_on, p.initial_reading),
            )
            await request_reconcile(conn, [p.account_no])
        elif isinstance(p, ev.AccountLinked):
            await conn.execute(
                "INSERT INTO account_links (account_no, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (p.account_no, p.user_id),
            )
        elif isinstance(p, ev.AccountUnlinked):
            await conn.execute(
                "DELETE FROM account_links WHERE account_no = %s AND user_id = %s", (p.account_no, p.user_id)
            )
        if self._on_meter is not None and isinstance(
            p, ev.AccountOpened | ev.MeterInstalled | ev.MeterReplaced
        ):
            await self._on_meter(conn, p.account_no)

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE accounts, account_attributes, meters, account_links")


async def request_reconcile(conn: Connection, account_nos: list[str]) -> None:
    """Ask the reconciler to check these accounts' charges against the facts (in the caller's transaction).

    Unconditional: a rating or billing transaction of the account may be in flight with the old facts,
    its charge not visible yet; the reconciler takes the account's lock first, so it sees that charge."""
    if not account_nos:
        return
    await conn.execute(
        "INSERT INTO reconcile_requests (account_no) SELECT unnest(%s::text[])"
        " ON CONFLICT (account_no) DO UPDATE SET version = reconcile_requests.version + 1,"
        " requested_at = now()",
        (sorted(set(account_nos)),),
    )


async def _set_attribute(
    conn: Connection, account_no: str, attribute: str, effective_from: dt.date, version: int, value: Any
) -> None:
    await conn.execute(
        "INSERT INTO account_attributes (account_no, attribute, effective_from, stream_version, value)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (account_no, attribute, effective_from, version, Jsonb(value)),
    )


# --- queries --------------------------------------------------------------------------------------


_ACCOUNT_SQL = "SELECT opened_on, registered_at FROM accounts WHERE account_no = %s"
_ACCOUNT_FOR_UPDATE_SQL = _ACCOUNT_SQL + " FOR UPDATE"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    account_no: str
    opened_on: dt.date
    registered_at: dt.datetime
    meters: tuple[Meter, ...]

    @property
    def meter(self) -> Meter | None:
        return current_meter(self.meters)


async def load_account(conn: Connection, account_no: str, *, lock: bool = False) -> AccountRecord | None:
    """The account and its meters; `lock=True` takes the account's row lock (serializes rating and
    billing of one account)."""
    query = _ACCOUNT_FOR_UPDATE_SQL if lock else _ACCOUNT_SQL
    cur = await conn.execute(query, (account_no,))
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await conn.execute(
        "SELECT serial, digits, installed_on, initial_reading, removed_on, final_reading FROM meters"
        " WHERE account_no = %s ORDER BY installed_on, serial",
        (account_no,),
    )
    meters = tuple(Meter(*m) for m in await cur.fetchall())
    return AccountRecord(account_no, row[0], row[1], meters)


_ATTRIBUTES_SQL = (
    "SELECT account_no, attribute, effective_from, stream_version, value::text FROM account_attributes"
    " WHERE account_no = ANY(%b::text[])"
)


def _attribute_map(rows: Iterable[tuple[Any, ...]]) -> dict[str, list[AttributeRow]]:
    """Attribute rows by account; the JSON values (sent as text) parsed with orjson: the same values as
    psycopg's jsonb loader gives, several times faster."""
    out: dict[str, list[AttributeRow]] = {}
    for no, attribute, effective_from, version, value in rows:
        out.setdefault(str(no), []).append(
            AttributeRow(str(attribute), effective_from, int(version), orjson.loads(value))
        )
    return out


async def attribute_rows(conn: Connection, account_nos: list[str]) -> dict[str, list[AttributeRow]]:
    cur = await conn.execute(_ATTRIBUTES_SQL, (account_nos,))
    return _attribute_map(await cur.fetchall())


async def household_on(conn: Connection, account_no: str, day: dt.date) -> Household | None:
    """The account's rating attributes as they stand on `day`; None before AccountOpened arrived."""
    rows = await attribute_rows(conn, [account_no])
    return household_on_rows(rows.get(account_no, ()), day)


async def load_facts(
    conn: Connection, account_no: str, *, lock: bool = False
) -> tuple[AccountRecord, AccountFacts] | None:
    """Everything the charges of the account are computed from: the account, its meters, attributes and
    accepted readings (in acceptance order). `lock=True` takes the account's row lock first."""
    loaded, _ = await load_facts_and(conn, account_no, lock=lock)
    return loaded


async def load_facts_and(
    conn: Connection, account_no: str, *, lock: bool = False, then: Sequence[tuple[str, tuple[Any, ...]]] = ()
) -> tuple[tuple[AccountRecord, AccountFacts] | None, list[list[tuple[Any, ...]]]]:
    """`load_facts`, plus the rows of the queries `then` (run after the facts' queries, so after the
    lock), all in one round trip: the statements are pipelined and run in order, each with its own
    snapshot (READ COMMITTED), so everything after the lock sees what its holder committed."""
    async with conn.pipeline():
        account_cur = await conn.execute(_ACCOUNT_FOR_UPDATE_SQL if lock else _ACCOUNT_SQL, (account_no,))
        meters_cur = await conn.execute(
            "SELECT serial, digits, installed_on, initial_reading, removed_on, final_reading FROM meters"
            " WHERE account_no = %s ORDER BY installed_on, serial",
            (account_no,),
        )
        attributes_cur = await conn.execute(
            "SELECT attribute, effective_from, stream_version, value FROM account_attributes"
            " WHERE account_no = %s",
            (account_no,),
        )
        readings_cur = await conn.execute(
            "SELECT reading_id, reading_date, value, consumption_kwh FROM readings WHERE account_no = %s"
            " ORDER BY stream_version",
            (account_no,),
        )
        extra_curs = [await conn.execute(query, params) for query, params in then]
        row = await account_cur.fetchone()
        meter_rows = await meters_cur.fetchall()
        attribute_rows_ = await attributes_cur.fetchall()
        reading_rows = await readings_cur.fetchall()
        extra = [list(await cur.fetchall()) for cur in extra_curs]
    if row is None:
        return None, extra
    meters = tuple(Meter(*m) for m in meter_rows)
    account = AccountRecord(account_no, row[0], row[1], meters)
    attributes = tuple(AttributeRow(str(a), d, int(v), value) for a, d, v, value in attribute_rows_)
    readings = tuple(
        ChainReading(str(r[0]), r[1], Decimal(r[2]), None if r[3] is None else Decimal(r[3]))
        for r in reading_rows
    )
    return (account, AccountFacts(account_no, account.opened_on, meters, attributes, readings)), extra


async def load_many_facts(conn: Connection, account_nos: list[str]) -> dict[str, AccountFacts]:
    """`load_facts` for a batch of accounts (set-based; no locks: the caller holds them): four statements
    pipelined (one round trip), the account numbers sent as one binary array parameter."""
    async with conn.pipeline():
        opened_cur = await conn.execute(
            "SELECT account_no, opened_on FROM accounts WHERE account_no = ANY(%b::text[])", (account_nos,)
        )
        meters_cur = await conn.execute(
            "SELECT account_no, serial, digits, installed_on, initial_reading, removed_on, final_reading"
            " FROM meters WHERE account_no = ANY(%b::text[]) ORDER BY account_no, installed_on, serial",
            (account_nos,),
        )
        readings_cur = await conn.execute(
            "SELECT account_no, reading_id, reading_date, value, consumption_kwh FROM readings"
            " WHERE account_no = ANY(%b::text[]) ORDER BY account_no, stream_version",
            (account_nos,),
        )
        attributes_cur = await conn.execute(_ATTRIBUTES_SQL, (account_nos,))
    opened = {str(a): d for a, d in await opened_cur.fetchall()}
    meters: dict[str, list[Meter]] = {}
    for row in await meters_cur.fetchall():
        meters.setdefault(str(row[0]), []).append(Meter(*row[1:]))
    readings: dict[str, list[ChainReading]] = {}
    for no, rid, day, value, kwh in await readings_cur.fetchall():
        readings.setdefault(str(no), []).append(
            ChainReading(str(rid), day, Decimal(value), None if kwh is None else Decimal(kwh))
        )
    rows = _attribute_map(await attributes_cur.fetchall())
    return {
        no: AccountFacts(
            no,
            opened_on,
            tuple(meters.get(no, ())),
            tuple(rows.get(no, ())),
            tuple(readings.get(no, ())),
        )
        for no, opened_on in opened.items()
    }


async def is_linked(conn: Connection, account_no: str, user_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM account_links WHERE account_no = %s AND user_id = %s", (account_no, user_id)
    )
    return await cur.fetchone() is not None
