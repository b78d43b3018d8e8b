"""Read models of `accounts.events.v1` (and the payment proofs of `ledger.events.v1`).

Each projection is idempotent through the runner (stream versions); `reset()` empties it for a rebuild
(`python -m accounts.worker rebuild <name>`). District offices live in `district_offices.py`.
"""

from __future__ import annotations

from typing import ClassVar

from accounts.adapters.read_models import write_link, write_request_status, write_request_submitted
from contracts.events import ledger
from contracts.events.accounts import (
    TOPIC,
    AccountLinked,
    AccountOpened,
    AccountUnlinked,
    MeterInstalled,
    MeterReplaced,
    PayerChanged,
    ResidentsChanged,
    ServiceRequestStatusChanged,
    ServiceRequestSubmitted,
    TariffOptionChanged,
)
from service_runtime.consumers import CanonicalEvent, Projection
from service_runtime.db import Connection


class AccountsProjection(Projection):
    """`accounts`: one row per account with its current attributes and meter.

    A dated attribute changes only when the fact is at least as recent as the one shown (a late,
    back-dated fact completes the history but doesn't override), as in the aggregate.
    """

    name: ClassVar[str] = "accounts"
    topics: ClassVar[tuple[str, ...]] = (TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset(
        {
            "AccountOpened",
            "ResidentsChanged",
            "TariffOptionChanged",
            "PayerChanged",
            "MeterInstalled",
            "MeterReplaced",
        }
    )

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        env = event.envelope
        meta = {"v": env.stream_version, "at": env.occurred_at}
        if isinstance(p, AccountOpened):
            await conn.execute(
                "INSERT INTO accounts (account_no, payer_name, payer_effective_from, address, residents,"
                " residents_effective_from, electric_stove, living_alone, tariff_option, tariff_effective_from,"
                " district_office_code, opened_on, opening_balance, version, updated_at)"
                " VALUES (%(no)s, %(payer)s, %(on)s, %(address)s, %(residents)s, %(on)s, %(stove)s, %(alone)s,"
                " %(tariff)s, %(on)s, %(office)s, %(on)s, %(balance)s, %(v)s, %(at)s)"
                " ON CONFLICT (account_no) DO NOTHING",
                {
                    "no": p.account_no,
                    "payer": p.payer_name,
                    "on": p.opened_on,
                    "address": p.address,
                    "residents": p.residents,
                    "stove": p.electric_stove,
                    "alone": p.living_alone,
                    "tariff": p.tariff_option,
                    "office": p.district_office_code,
                    "balance": p.opening_balance,
                    **meta,
                },
            )
        elif isinstance(p, ResidentsChanged | TariffOptionChanged | PayerChanged):
            column, since = (
                ("residents", "residents")
                if isinstance(p, ResidentsChanged)
                else ("tariff_option", "tariff")
                if isinstance(p, TariffOptionChanged)
                else ("payer_name", "payer")
            )
            value = getattr(p, column)
            await conn.execute(
                f"UPDATE accounts SET {column} = CASE WHEN {since}_effective_from <= %(eff)s"  # noqa: S608 (constants)
                f" THEN %(value)s ELSE {column} END,"
                f" {since}_effective_from = GREATEST({since}_effective_from, %(eff)s),"
                " version = %(v)s, updated_at = %(at)s WHERE account_no = %(no)s",
                {"no": p.account_no, "eff": p.effective_from, "value": value, **meta},
            )
        elif isinstance(p, MeterInstalled):
            await conn.execute(
                "UPDATE accounts SET meter_serial = %(serial)s, meter_digits = %(digits)s,"
                " meter_installed_on = %(on)s, version = %(v)s, updated_at = %(at)s WHERE account_no = %(no)s",
                {"no": p.account_no, "serial": p.serial, "digits": p.digits, "on": p.installed_on, **meta},
            )
        elif isinstance(p, MeterReplaced):
            await conn.execute(
                "UPDATE accounts SET meter_replaced_on = %(on)s, version = %(v)s, updated_at = %(at)s"
                " WHERE account_no = %(no)s",
                {"no": p.account_no, "on": p.replaced_on, **meta},
            )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE accounts")


class MeterHistoryProjection(Projection):
    """`meter-history`: every meter of every account, installed and removed, with the readings."""

    name: ClassVar[str] = "meter-history"
    topics: ClassVar[tuple[str, ...]] = (TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"MeterInstalled", "MeterReplaced"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        if isinstance(p, MeterInstalled):
            await conn.execute(
                "INSERT INTO meter_history (account_no, installed_version, serial, digits, installed_on,"
                " initial_reading) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    p.account_no,
                    event.envelope.stream_version,
                    p.serial,
                    p.digits,
                    p.installed_on,
                    p.initial_reading,
                ),
            )
        elif isinstance(p, MeterReplaced):
            await conn.execute(
                "UPDATE meter_history SET removed_on = %s, final_reading = %s"
                " WHERE account_no = %s AND serial = %s AND removed_on IS NULL",
                (p.replaced_on, p.final_reading, p.account_no, p.old_serial),
            )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE meter_history")


class LinksProjection(Projection):
    """`account-links`: who may see which account. The authorization source of truth of the system."""

    name: ClassVar[str] = "account-links"
    topics: ClassVar[tuple[str, ...]] = (TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"AccountLinked", "AccountUnlinked"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        if isinstance(p, AccountLinked | AccountUnlinked):
            await write_link(
                conn,
                p.account_no,
                p.user_id,
                isinstance(p, AccountLinked),
                event.envelope.stream_version,
                event.envelope.occurred_at,
            )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE account_links")


class ServiceRequestsProjection(Projection):
    """`service-requests`: customer requests with their current status and the back-office's comment."""

    name: ClassVar[str] = "service-requests"
    topics: ClassVar[tuple[str, ...]] = (TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"ServiceRequestSubmitted", "ServiceRequestStatusChanged"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        env = event.envelope
        if isinstance(p, ServiceRequestSubmitted):
            await write_request_submitted(
                conn,
                request_id=p.request_id,
                account_no=p.account_no,
                user_id=p.user_id,
                category=p.category,
                text=p.text,
                version=env.stream_version,
                at=env.occurred_at,
            )
        elif isinstance(p, ServiceRequestStatusChanged):
            await write_request_status(
                conn,
                request_id=p.request_id,
                status=p.status,
                comment=p.comment,
                version=env.stream_version,
                at=env.occurred_at,
            )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE service_requests")


class PaymentProofProjection(Projection):
    """`payment-proofs`: per account, the payments ledger published (and whether reversed), for linking."""

    name: ClassVar[str] = "payment-proofs"
    topics: ClassVar[tuple[str, ...]] = (ledger.TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"PaymentReceived", "PaymentReversed"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        p = event.payload
        env = event.envelope
        if isinstance(p, ledger.PaymentReceived):
            await conn.execute(
                "INSERT INTO proof_payments (stream_id, payment_id, account_no, stream_version, paid_on, amount)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (stream_id, payment_id) DO UPDATE"
                " SET paid_on = excluded.paid_on, amount = excluded.amount, stream_version = excluded.stream_version",
                (env.stream_id, p.payment_id, p.account_no, env.stream_version, p.paid_on, p.amount),
            )
        elif isinstance(p, ledger.PaymentReversed):
            await conn.execute(
                "INSERT INTO proof_payments (stream_id, payment_id, account_no, stream_version, reversed)"
                " VALUES (%s, %s, %s, %s, true) ON CONFLICT (stream_id, payment_id) DO UPDATE SET reversed = true",
                (env.stream_id, p.payment_id, p.account_no, env.stream_version),
            )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE proof_payments")
