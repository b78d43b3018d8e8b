"""Money and quantities: Decimal end to end, serialized as strings with exactly two decimals.

Tenge amounts carry tiyn (0.01 KZT). Rounding is always half-up to 0.01, as RATING.md fixes it.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

TIYN = Decimal("0.01")
ZERO = Decimal("0.00")
# ASCII digits only: Decimal() alone also takes other scripts' digits, exponents and underscores.
_NUMBER = re.compile(r"[+-]?[0-9]{1,16}(\.[0-9]{1,16})?")


def round_half_up(value: Decimal, quantum: Decimal = TIYN) -> Decimal:
    """Round to `quantum` (0.01 by default) with ties away from zero."""
    return value.quantize(quantum, rounding=ROUND_HALF_UP)


def to_tiyn(value: Decimal) -> int:
    """Exact integer tiyn of an amount that already has at most two decimals."""
    scaled = value * 100
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than two decimals")
    return int(scaled)


def from_tiyn(tiyn: int) -> Decimal:
    return (Decimal(tiyn) / 100).quantize(TIYN)


def format_money(value: Decimal) -> str:
    """'1234.50': the wire form of money and kWh."""
    return f"{value.quantize(TIYN, rounding=ROUND_HALF_UP):f}"


def _parse_two_decimals(value: Any) -> Decimal:
    """Accept str/int/Decimal with at most two decimals. Floats are refused: they cannot carry tiyn exactly."""
    if isinstance(value, (bool, float)):
        raise ValueError("money must be a string or an integer, not a float")
    if isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, int | str):
        text = str(value).strip()
        if not _NUMBER.fullmatch(text):
            raise ValueError("not a number")
        try:
            parsed = Decimal(text)
        except InvalidOperation as exc:
            raise ValueError("not a number") from exc
    else:
        raise ValueError("money must be a string")
    if not parsed.is_finite():
        raise ValueError("not a finite number")
    exponent = parsed.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and parsed != parsed.quantize(TIYN):
        raise ValueError("at most two decimals are allowed")
    if abs(parsed) >= Decimal("1e13"):
        raise ValueError("amount is out of range")
    return parsed.quantize(TIYN)


_MONEY_SCHEMA = WithJsonSchema(
    {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "examples": ["1234.50"]}
)

# Any sign; amounts with a sign constraint validate it in their own model.
Money = Annotated[
    Decimal,
    BeforeValidator(_parse_two_decimals),
    PlainSerializer(format_money, return_type=str, when_used="json"),
    _MONEY_SCHEMA,
]

# kWh and meter readings share the two-decimal wire form.
Kwh = Money
