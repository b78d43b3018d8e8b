"""District offices: ingest from `backoffice.reference.v1`, and the read model on `accounts.events.v1`."""

from __future__ import annotations

from typing import ClassVar

from accounts.domain.district_offices import decide_office_update
from contracts import backoffice
from contracts.events.accounts import TOPIC, DistrictOfficeChanged, district_office_stream
from service_runtime.consumers import CanonicalEvent, IngressHandler, IngressMessage, Projection
from service_runtime.db import Connection
from service_runtime.eventstore import EventStore, NewEvent


class DistrictOfficeIngress(IngressHandler):
    name: ClassVar[str] = "district-office-ingress"
    topics: ClassVar[tuple[str, ...]] = (backoffice.REFERENCE,)

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        update = message.payload
        assert isinstance(update, backoffice.DistrictOfficeUpdated)
        stream = district_office_stream(update.code)
        history = await self._store.read_stream(conn, stream)
        current = DistrictOfficeChanged.model_validate(history[-1].payload) if history else None
        changes = decide_office_update(current, update)
        # The back-office event id becomes ours: a re-sent message can never append twice.
        await self._store.append(
            conn, stream, len(history), [NewEvent(c, event_id=message.envelope.event_id) for c in changes]
        )


class DistrictOfficesProjection(Projection):
    name: ClassVar[str] = "district-offices"
    topics: ClassVar[tuple[str, ...]] = (TOPIC,)
    handles: ClassVar[frozenset[str]] = frozenset({"DistrictOfficeChanged"})

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        office = event.payload
        assert isinstance(office, DistrictOfficeChanged)
        await conn.execute(
            "INSERT INTO district_offices (code, name, address, phone, hours, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (code) DO UPDATE SET name = excluded.name, address = excluded.address,"
            " phone = excluded.phone, hours = excluded.hours, updated_at = excluded.updated_at",
            (
                office.code,
                office.name,
                office.address,
                office.phone,
                office.hours,
                event.envelope.occurred_at,
            ),
        )

    async def reset(self, conn: Connection) -> None:
        await conn.execute("TRUNCATE district_offices")


async def list_district_offices(conn: Connection) -> list[dict[str, str]]:
    cur = await conn.execute("SELECT code, name, address, phone, hours FROM district_offices ORDER BY code")
    return [
        {"code": code, "name": name, "address": address, "phone": phone, "hours": hours}
        for code, name, address, phone, hours in await cur.fetchall()
    ]
