"""Constrained scalar types shared by events and APIs."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

from contracts.money import Money

AccountNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{10,12}$"), Field(examples=["100200300401"])]
PeriodStr = Annotated[
    str, StringConstraints(pattern=r"^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])$"), Field(examples=["2025-03"])
]
ServiceCode = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$"), Field(examples=["electricity"])
]
TariffOption = Literal["flat", "tiered"]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


PositiveMoney = Annotated[
    Money,
    AfterValidator(_positive),
    WithJsonSchema({"type": "string", "pattern": r"^(?!0+\.00$)[0-9]+\.[0-9]{2}$", "examples": ["1234.50"]}),
]
NonNegativeDecimal2 = Annotated[
    Money,
    AfterValidator(_non_negative),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+\.[0-9]{2}$", "examples": ["125.40"]}),
]
