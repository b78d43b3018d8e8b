"""The calculator's pure domain: tariff catalog, rating engine (RATING.md §4), reading rules (§5), estimates (§6)."""

from .errors import CatalogError, DomainError, RatingError
from .estimates import BilledMonth, Estimate, average_daily_kwh, estimate_for_period, estimate_kwh
from .rating import (
    AccountAttributes,
    MeterReading,
    MeterReplacement,
    RatedInterval,
    RatedPiece,
    RatingLine,
    RatingResult,
    consumption_between,
    rate,
    rate_consumption,
)
from .readings import MeterInfo, ReadingProblem, validate_reading
from .tariffs import TariffCatalog, TariffRow, TierNorm, TierNorms, VatRate, seed_catalog

__all__ = [
    "AccountAttributes",
    "BilledMonth",
    "CatalogError",
    "DomainError",
    "Estimate",
    "MeterInfo",
    "MeterReading",
    "MeterReplacement",
    "RatedInterval",
    "RatedPiece",
    "RatingError",
    "RatingLine",
    "RatingResult",
    "ReadingProblem",
    "TariffCatalog",
    "TariffRow",
    "TierNorm",
    "TierNorms",
    "VatRate",
    "average_daily_kwh",
    "consumption_between",
    "estimate_for_period",
    "estimate_kwh",
    "rate",
    "rate_consumption",
    "seed_catalog",
    "validate_reading",
]
