"""The tariff catalog as date-effective data (RATING.md §2-§3).

Nothing here knows a rate: the rows, VAT rates and tier norms come from the back-office
(`TariffPublished`, `VatRateChanged`) or from the seed file `seed_catalog.json`, the catalog of
RATING.md §3. A row applies from its `effective_from` (inclusive) until the next row's date.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import CatalogError
from .quantities import prorate

# Tier norms are per resident per 30.5-day month (RATING.md §2); a rule, not a rate.
DAYS_PER_NORM_MONTH = Decimal("30.5")

SEED_CATALOG_RESOURCE = "seed_catalog.json"


@dataclass(frozen=True, slots=True)
class TierNorm:
    """One row of the norm table: cumulative upper bounds of tiers 1 and 2, kWh per resident per 30.5 days."""

    electric_stove: bool
    living_alone: bool
    tier1: Decimal
    tier2: Decimal

    def __post_init__(self) -> None:
        if not (Decimal(0) <= self.tier1 <= self.tier2):
            raise CatalogError(
                "invalid_catalog", detail=f"tier norms must satisfy 0 ≤ tier1 ≤ tier2, got {self}"
            )

    def limits(self, residents: int, days: int) -> tuple[Decimal, Decimal]:
        """`(L1, L2)` for `residents` over `days`: `norm × n × d / 30.5`, each rounded half-up to 0.01 kWh."""
        return (
            prorate(self.tier1 * residents, days, DAYS_PER_NORM_MONTH),
            prorate(self.tier2 * residents, days, DAYS_PER_NORM_MONTH),
        )


_NORM_KEYS = frozenset((stove, alone) for stove in (False, True) for alone in (False, True))


@dataclass(frozen=True, slots=True)
class TierNorms:
    """The 4-row norm table of RATING.md §2, keyed by `(electric_stove, living_alone)`."""

    rows: tuple[TierNorm, ...]
    _by_key: dict[tuple[bool, bool], TierNorm] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = tuple(self.rows)
        by_key = {(row.electric_stove, row.living_alone): row for row in rows}
        if len(by_key) != len(rows) or set(by_key) != _NORM_KEYS:
            raise CatalogError(
                "invalid_catalog",
                detail="the norm table needs exactly one row per (electric_stove, living_alone)",
            )
        object.__setattr__(
            self, "rows", tuple(sorted(rows, key=lambda r: (r.electric_stove, r.living_alone)))
        )
        object.__setattr__(self, "_by_key", by_key)

    def for_household(self, electric_stove: bool, living_alone: bool) -> TierNorm:
        return self._by_key[(electric_stove, living_alone)]

    def limits(
        self, *, electric_stove: bool, living_alone: bool, residents: int, days: int
    ) -> tuple[Decimal, Decimal]:
        """`(L1, L2)` of RATING.md §2 for a household over `days` days."""
        return self.for_household(electric_stove, living_alone).limits(residents, days)


@dataclass(frozen=True, slots=True)
class TariffRow:
    """Net rates in KZT per kWh, VAT excluded, in force from `effective_from`.

    `norms` is optional: `TariffPublished` carries the norm table with the rates, and a row that has
    one rates its days with it; a row without uses the catalog's table.
    """

    effective_from: date
    flat: Decimal
    tier1: Decimal
    tier2: Decimal
    tier3: Decimal
    norms: TierNorms | None = None

    def __post_init__(self) -> None:
        for name in ("flat", "tier1", "tier2", "tier3"):
            value: Decimal = getattr(self, name)
            if not value.is_finite() or value < 0:
                raise CatalogError("invalid_catalog", detail=f"{name} rate must be ≥ 0, got {value}")


@dataclass(frozen=True, slots=True)
class VatRate:
    """VAT as a fraction (0.12 for 12%) in force from `effective_from`."""

    effective_from: date
    rate: Decimal

    def __post_init__(self) -> None:
        if not self.rate.is_finite() or not (Decimal(0) <= self.rate < 1):
            raise CatalogError("invalid_catalog", detail=f"VAT rate must be in [0, 1), got {self.rate}")


@dataclass(frozen=True, slots=True)
class TariffCatalog:
    """Date-effective tariff rows, VAT rates and the default tier norms.

    Rows are kept sorted by date; two rows (or two VAT rates) with the same date are an error.
    """

    rows: tuple[TariffRow, ...]
    vat_rates: tuple[VatRate, ...]
    norms: TierNorms
    _row_dates: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _vat_dates: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _change_dates: tuple[date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rows = tuple(sorted(self.rows, key=lambda r: r.effective_from))
        vats = tuple(sorted(self.vat_rates, key=lambda v: v.effective_from))
        row_dates = tuple(r.effective_from for r in rows)
        vat_dates = tuple(v.effective_from for v in vats)
        if len(set(row_dates)) != len(row_dates):
            raise CatalogError("invalid_catalog", detail="two tariff rows share an effective date")
        if len(set(vat_dates)) != len(vat_dates):
            raise CatalogError("invalid_catalog", detail="two VAT rates share an effective date")
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "vat_rates", vats)
        object.__setattr__(self, "_row_dates", row_dates)
        object.__setattr__(self, "_vat_dates", vat_dates)
        object.__setattr__(self, "_change_dates", tuple(sorted(set(row_dates) | set(vat_dates))))

    def tariff_on(self, day: date) -> TariffRow:
        """The tariff row in force on `day`; `CatalogError('no_tariff_in_force')` when none is."""
        index = bisect_right(self._row_dates, day) - 1
        if index < 0:
            raise CatalogError("no_tariff_in_force", day=day.isoformat())
        return self.rows[index]

    def vat_on(self, day: date) -> VatRate:
        """The VAT rate in force on `day`; `CatalogError('no_vat_in_force')` when none is."""
        index = bisect_right(self._vat_dates, day) - 1
        if index < 0:
            raise CatalogError("no_vat_in_force", day=day.isoformat())
        return self.vat_rates[index]

    def norms_on(self, day: date) -> TierNorms:
        """The norm table in force on `day`: the tariff row's own, else the catalog's."""
        return self.tariff_on(day).norms or self.norms

    def change_dates_between(self, start: date, end: date) -> tuple[date, ...]:
        """Dates `d` with `start < d < end` on which a tariff row or a VAT rate takes effect, ascending.

        Every row boundary counts, even a row that repeats the previous rates: it is a new row of the
        catalog, and splitting there costs at most rounding (see the split property test).
        """
        low = bisect_right(self._change_dates, start)
        high = bisect_left(self._change_dates, end)
        return self._change_dates[low:high] if high > low else ()

    def with_tariff_row(self, row: TariffRow) -> TariffCatalog:
        """A catalog with `row` added, replacing a row of the same date (a re-published tariff)."""
        kept = tuple(r for r in self.rows if r.effective_from != row.effective_from)
        return replace(self, rows=(*kept, row))

    def with_vat_rate(self, vat: VatRate) -> TariffCatalog:
        """A catalog with `vat` added, replacing a VAT rate of the same date."""
        kept = tuple(v for v in self.vat_rates if v.effective_from != vat.effective_from)
        return replace(self, vat_rates=(*kept, vat))


# --- the catalog as data -------------------------------------------------------------------------


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool | float) or not isinstance(value, str | int | Decimal):
        raise CatalogError("invalid_catalog", detail=f"{what} must be a decimal string, got {value!r}")
    try:
        parsed = Decimal(value)
    except InvalidOperation as exc:
        raise CatalogError("invalid_catalog", detail=f"{what} is not a number: {value!r}") from exc
    if not parsed.is_finite():
        raise CatalogError("invalid_catalog", detail=f"{what} is not a finite number: {value!r}")
    return parsed


def _date(value: Any, what: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise CatalogError("invalid_catalog", detail=f"{what} is not an ISO date: {value!r}") from exc


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise CatalogError("invalid_catalog", detail=f"{what} must be true or false, got {value!r}")
    return value


def norms_from_data(data: Iterable[Mapping[str, Any]]) -> TierNorms:
    """`[{electric_stove, living_alone, tier1, tier2}, ...]` (the `norms` of `TariffPublished`)."""
    return TierNorms(
        tuple(
            TierNorm(
                electric_stove=_bool(item["electric_stove"], "electric_stove"),
                living_alone=_bool(item["living_alone"], "living_alone"),
                tier1=_decimal(item["tier1"], "norm tier1"),
                tier2=_decimal(item["tier2"], "norm tier2"),
            )
            for item in data
        )
    )


def tariff_row_from_data(item: Mapping[str, Any]) -> TariffRow:
    """`{effective_from, flat, tier1, tier2, tier3[, norms]}` (the fields of `TariffPublished`)."""
    norms = item.get("norms")
    return TariffRow(
        effective_from=_date(item["effective_from"], "effective_from"),
        flat=_decimal(item["flat"], "flat"),
        tier1=_decimal(item["tier1"], "tier1"),
        tier2=_decimal(item["tier2"], "tier2"),
        tier3=_decimal(item["tier3"], "tier3"),
        norms=norms_from_data(norms) if norms else None,
    )


def vat_rate_from_data(item: Mapping[str, Any]) -> VatRate:
    """`{effective_from, rate}` (the fields of `VatRateChanged`; rate as a fraction, e.g. "0.16")."""
    return VatRate(
        effective_from=_date(item["effective_from"], "effective_from"),
        rate=_decimal(item["rate"], "VAT rate"),
    )


def catalog_from_data(data: Mapping[str, Any]) -> TariffCatalog:
    """A catalog from `{"tariffs": [...], "vat_rates": [...], "norms": [...]}` (the seed file's shape)."""
    try:
        return TariffCatalog(
            rows=tuple(tariff_row_from_data(item) for item in data["tariffs"]),
            vat_rates=tuple(vat_rate_from_data(item) for item in data["vat_rates"]),
            norms=norms_from_data(data["norms"]),
        )
    except (KeyError, TypeError) as exc:
        raise CatalogError("invalid_catalog", detail=f"missing or malformed field: {exc}") from exc


def _norms_to_data(norms: TierNorms) -> list[dict[str, Any]]:
    return [
        {
            "electric_stove": n.electric_stove,
            "living_alone": n.living_alone,
            "tier1": str(n.tier1),
            "tier2": str(n.tier2),
        }
        for n in norms.rows
    ]


def catalog_to_data(catalog: TariffCatalog) -> dict[str, Any]:
    """The inverse of `catalog_from_data`; decimals as strings."""
    tariffs: list[dict[str, Any]] = []
    for row in catalog.rows:
        item: dict[str, Any] = {
            "effective_from": row.effective_from.isoformat(),
            "flat": str(row.flat),
            "tier1": str(row.tier1),
            "tier2": str(row.tier2),
            "tier3": str(row.tier3),
        }
        if row.norms is not None:
            item["norms"] = _norms_to_data(row.norms)
        tariffs.append(item)
    return {
        "tariffs": tariffs,
        "vat_rates": [
            {"effective_from": v.effective_from.isoformat(), "rate": str(v.rate)} for v in catalog.vat_rates
        ],
        "norms": _norms_to_data(catalog.norms),
    }


@lru_cache(maxsize=1)
def seed_catalog() -> TariffCatalog:
    """The catalog of RATING.md §3, read from the package data file `seed_catalog.json`.

    The service seeds it into its event store at start; the rating engine only ever sees a
    `TariffCatalog`. The result is immutable, so it is read once.
    """
    text = resources.files("calculator.domain").joinpath(SEED_CATALOG_RESOURCE).read_text(encoding="utf-8")
    return catalog_from_data(json.loads(text))
