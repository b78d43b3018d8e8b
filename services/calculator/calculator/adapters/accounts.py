"""Calculator's projection of accounts' events: the attributes rating reads, meters, and user links.

Attributes are kept with their effective dates (`account_attributes`), so rating reads them as they
stand on a reading's date: the row with the latest `effective_from` on or before the day (the latest
event among equal dates), else the earliest one (the account's opening values).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from psycopg.types.json import Jsonb

from calculator.domain.billing import Meter, current_meter
from calculator.domain.rating import AccountAttributes, TariffOption
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
                " ON CONFLICT (account_no) DO UPDATE SET opened_on = excluded.opened_on",
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
        elif isinstance(p, ev.TariffOptionChanged):
            await _set_attribute(
                conn, p.account_no, "tariff_option", p.effective_from, version, p.tariff_option
            )
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


_ATTRIBUTES_SQL = """
SELECT DISTINCT ON (attribute) attribute, value
FROM account_attributes
WHERE account_no = %(no)s
ORDER BY attribute,
         (effective_from <= %(day)s) DESC,
         CASE WHEN effective_from <= %(day)s THEN effective_from END DESC NULLS LAST,
         effective_from ASC,
         stream_version DESC
"""


@dataclass(frozen=True, slots=True)
class Household:
    tariff_option: TariffOption
    residents: int
    electric_stove: bool
    living_alone: bool

    def attributes(self, meter_digits: int) -> AccountAttributes:
        return AccountAttributes(
            tariff_option=self.tariff_option,
            residents=self.residents,
            electric_stove=self.electric_stove,
            living_alone=self.living_alone,
            meter_digits=meter_digits,
        )


async def household_on(conn: Connection, account_no: str, day: dt.date) -> Household | None:
    """The account's rating attributes as they stand on `day`; None before AccountOpened arrived."""
    cur = await conn.execute(_ATTRIBUTES_SQL, {"no": account_no, "day": day})
    values = {str(a): v for a, v in await cur.fetchall()}
    if not {"residents", "tariff_option", "electric_stove", "living_alone"} <= values.keys():
        return None
    return Household(
        tariff_option="tiered" if values["tariff_option"] == "tiered" else "flat",
        residents=int(values["residents"]),
        electric_stove=bool(values["electric_stove"]),
        living_alone=bool(values["living_alone"]),
    )


async def is_linked(conn: Connection, account_no: str, user_id: uuid.UUID) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM account_links WHERE account_no = %s AND user_id = %s", (account_no, user_id)
    )
    return await cur.fetchone() is not None
