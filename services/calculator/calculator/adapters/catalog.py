"""The tariff catalog as date-effective data in calculator's event store (stream `tariff-catalog`).

- At start the stream is seeded from `domain/seed_catalog.json` (RATING.md §3) as canonical
  TariffPublished / VatRateChanged events, only when it is empty: the seed events have fixed ids and
  the append expects version 0, so two processes starting at once seed it once.
- The back-office's TariffPublished / VatRateChanged (`backoffice.tariffs.v1`) append more; a row
  identical to the one in force for its date adds nothing.
- The tables `tariff_rows` and `vat_rates` are its projection, written in the append's own
  transaction (so the catalog is never behind its stream) and rebuilt from the stream by
  `python -m calculator.worker rebuild-catalog`. The engine only ever sees `load()`'s TariffCatalog.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from psycopg.types.json import Jsonb

from calculator.domain.billing import TARIFF_CATALOG_STREAM, event_id
from calculator.domain.tariffs import TariffCatalog, TariffRow, TierNorm, TierNorms, VatRate, seed_catalog
from contracts.backoffice import TierNormRow
from contracts.envelope import Envelope
from contracts.events.calculator import TariffPublished, VatRateChanged
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError, EventStore, NewEvent

CatalogEvent = TariffPublished | VatRateChanged


def _norm_rows(norms: TierNorms) -> list[TierNormRow]:
    return [
        TierNormRow(
            electric_stove=n.electric_stove, living_alone=n.living_alone, tier1_kwh=n.tier1, tier2_kwh=n.tier2
        )
        for n in norms.rows
    ]


def _norms(rows: Sequence[TierNormRow] | Sequence[dict[str, Any]]) -> TierNorms:
    items = [r.model_dump() if isinstance(r, TierNormRow) else r for r in rows]
    return TierNorms(
        tuple(
            TierNorm(
                electric_stove=bool(i["electric_stove"]),
                living_alone=bool(i["living_alone"]),
                tier1=Decimal(str(i["tier1_kwh"])),
                tier2=Decimal(str(i["tier2_kwh"])),
            )
            for i in items
        )
    )


def seed_events() -> list[NewEvent]:
    """The seed file as canonical events, with fixed ids."""
    catalog = seed_catalog()
    events: list[NewEvent] = []
    for row in catalog.rows:
        payload = TariffPublished(
            effective_from=row.effective_from,
            flat=row.flat,
            tier1=row.tier1,
            tier2=row.tier2,
            tier3=row.tier3,
            norms=_norm_rows(row.norms or catalog.norms),
        )
        events.append(
            NewEvent(payload, event_id=event_id("seed:TariffPublished", row.effective_from.isoformat()))
        )
    for vat in catalog.vat_rates:
        events.append(
            NewEvent(
                VatRateChanged(effective_from=vat.effective_from, rate=vat.rate),
                event_id=event_id("seed:VatRateChanged", vat.effective_from.isoformat()),
            )
        )
    return events


class CatalogRepository:
    # The catalog stream's version (for `load(version=...)`), to run in the caller's pipeline.
    VERSION_SQL = "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = %s"
    VERSION_PARAMS = (TARIFF_CATALOG_STREAM,)

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._cached: tuple[int, TariffCatalog] | None = None

    async def ensure_seeded(self, conn: Connection) -> bool:
        """Seed the stream from the seed file if it is empty; True when this call seeded it."""
        if await self._store.stream_version(conn, TARIFF_CATALOG_STREAM) > 0:
            return False
        try:
            async with conn.transaction():
                envelopes = await self._store.append(conn, TARIFF_CATALOG_STREAM, 0, seed_events())
                for envelope in envelopes:
                    await self.apply(conn, envelope)
        except ConcurrencyError:
            return False  # another process seeded it first
        return True

    async def publish(self, conn: Connection, payload: CatalogEvent, new_event_id: uuid.UUID) -> bool:
        """Append a tariff row or VAT rate unless the identical one is already in force for its date."""
        await self.ensure_seeded(conn)
        for _ in range(5):
            version = await self._store.stream_version(conn, TARIFF_CATALOG_STREAM)
            if await self._is_current(conn, payload):
                return False
            try:
                async with conn.transaction():
                    envelopes = await self._store.append(
                        conn, TARIFF_CATALOG_STREAM, version, [NewEvent(payload, event_id=new_event_id)]
                    )
                    for envelope in envelopes:
                        await self.apply(conn, envelope)
                return True
            except ConcurrencyError:
                continue
        raise ConcurrencyError(TARIFF_CATALOG_STREAM, -1)

    async def _is_current(self, conn: Connection, payload: CatalogEvent) -> bool:
        if isinstance(payload, VatRateChanged):
            cur = await conn.execute(
                "SELECT rate FROM vat_rates WHERE effective_from = %s", (payload.effective_from,)
            )
            row = await cur.fetchone()
            return row is not None and Decimal(row[0]) == payload.rate
        cur = await conn.execute(
            "SELECT flat, tier1, tier2, tier3, norms FROM tariff_rows WHERE effective_from = %s",
            (payload.effective_from,),
        )
        row = await cur.fetchone()
        if row is None:
            return False
        same_rates = [Decimal(x) for x in row[:4]] == [
            payload.flat,
            payload.tier1,
            payload.tier2,
            payload.tier3,
        ]
        return same_rates and _norms(row[4]) == _norms(payload.norms)

    async def apply(self, conn: Connection, envelope: Envelope) -> None:
        """Project one event of the stream into the tables."""
        if envelope.event_type == "TariffPublished":
            t = TariffPublished.model_validate(envelope.payload)
            await conn.execute(
                "INSERT INTO tariff_rows (effective_from, flat, tier1, tier2, tier3, norms, event_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (effective_from) DO UPDATE SET"
                " flat = excluded.flat, tier1 = excluded.tier1, tier2 = excluded.tier2,"
                " tier3 = excluded.tier3, norms = excluded.norms, event_id = excluded.event_id",
                (
                    t.effective_from,
                    t.flat,
                    t.tier1,
                    t.tier2,
                    t.tier3,
                    Jsonb(orjson.loads(orjson.dumps([n.model_dump(mode="json") for n in t.norms]))),
                    envelope.event_id,
                ),
            )
        elif envelope.event_type == "VatRateChanged":
            v = VatRateChanged.model_validate(envelope.payload)
            await conn.execute(
                "INSERT INTO vat_rates (effective_from, rate, event_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (effective_from) DO UPDATE SET rate = excluded.rate, event_id = excluded.event_id",
                (v.effective_from, v.rate, envelope.event_id),
            )

    async def rebuild(self, conn: Connection) -> int:
        """Empty the tables and project the stream again; returns the events applied."""
        async with conn.transaction():
            await conn.execute("TRUNCATE tariff_rows, vat_rates")
            envelopes = await self._store.read_stream(conn, TARIFF_CATALOG_STREAM)
            for envelope in envelopes:
                await self.apply(conn, envelope)
        self._cached = None
        return len(envelopes)

    async def load(self, conn: Connection, *, version: int | None = None) -> TariffCatalog:
        """The catalog the engine rates with (cached until the stream moves on). `version`: the
        stream's version the caller has just read in its transaction (`VERSION_SQL`), to save the query."""
        if version is None:
            version = await self._store.stream_version(conn, TARIFF_CATALOG_STREAM)
        if self._cached is not None and self._cached[0] == version:
            return self._cached[1]
        cur = await conn.execute(
            "SELECT effective_from, flat, tier1, tier2, tier3, norms FROM tariff_rows ORDER BY effective_from"
        )
        rows = [
            TariffRow(
                effective_from=r[0],
                flat=_dec(r[1]),
                tier1=_dec(r[2]),
                tier2=_dec(r[3]),
                tier3=_dec(r[4]),
                norms=_norms(r[5]),
            )
            for r in await cur.fetchall()
        ]
        cur = await conn.execute("SELECT effective_from, rate FROM vat_rates ORDER BY effective_from")
        vats = [VatRate(effective_from=d, rate=_dec(r)) for d, r in await cur.fetchall()]
        default_norms = rows[0].norms if rows and rows[0].norms is not None else seed_catalog().norms
        catalog = TariffCatalog(rows=tuple(rows), vat_rates=tuple(vats), norms=default_norms)
        self._cached = (version, catalog)
        return catalog


def _dec(value: Any) -> Decimal:
    """A NUMERIC(16, 4) column without its padding zeros (16.3600 → 16.36)."""
    d = Decimal(value)
    normalized = d.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return d.quantize(Decimal("0.01"))
    return normalized


def norms_to_api(norms: TierNorms) -> list[dict[str, Any]]:
    return [
        {
            "electric_stove": n.electric_stove,
            "living_alone": n.living_alone,
            "tier1_kwh": _fmt(n.tier1),
            "tier2_kwh": _fmt(n.tier2),
        }
        for n in norms.rows
    ]


def _fmt(value: Decimal) -> str:
    return f"{_dec(value):f}"


def catalog_to_api(catalog: TariffCatalog) -> dict[str, Any]:
    """GET /tariffs: every row and VAT rate with its `[effective_from, effective_to)` (to: None = open)."""
    tariffs = []
    for i, row in enumerate(catalog.rows):
        following = catalog.rows[i + 1].effective_from if i + 1 < len(catalog.rows) else None
        tariffs.append(
            {
                "effective_from": row.effective_from.isoformat(),
                "effective_to": following.isoformat() if following else None,
                "flat": _fmt(row.flat),
                "tier1": _fmt(row.tier1),
                "tier2": _fmt(row.tier2),
                "tier3": _fmt(row.tier3),
                "norms": norms_to_api(row.norms or catalog.norms),
            }
        )
    vats = []
    for i, vat in enumerate(catalog.vat_rates):
        following = catalog.vat_rates[i + 1].effective_from if i + 1 < len(catalog.vat_rates) else None
        vats.append(
            {
                "effective_from": vat.effective_from.isoformat(),
                "effective_to": following.isoformat() if following else None,
                "rate": _fmt(vat.rate),
            }
        )
    return {"currency": "KZT", "unit": "kWh", "vat_included": False, "tariffs": tariffs, "vat_rates": vats}
