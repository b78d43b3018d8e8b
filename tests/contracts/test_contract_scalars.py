"""The shared scalar types refuse what Python's Decimal and Unicode `\\d` would quietly accept."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import BaseModel, ValidationError

from contracts.money import Money
from contracts.types import AccountNo, PeriodStr


class _Sample(BaseModel):
    amount: Money
    account_no: AccountNo
    period: PeriodStr


def _sample(**overrides: object) -> dict[str, object]:
    return {"amount": "1234.50", "account_no": "100200300401", "period": "2025-03", **overrides}


def test_valid_values_parse_to_two_decimals() -> None:
    assert _Sample.model_validate(_sample()).amount == Decimal("1234.50")
    assert _Sample.model_validate(_sample(amount="100")).amount == Decimal("100.00")
    assert _Sample.model_validate(_sample(amount=" -3.1 ")).amount == Decimal("-3.10")


@pytest.mark.parametrize(
    "field, value",
    [
        ("amount", "١٢٣.٤٥"),  # Arabic-Indic digits: Decimal() accepts them
        ("amount", "1e3"),
        ("amount", "1_000"),
        ("amount", "12.345"),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("amount", 12.5),
        ("amount", "9" * 40),
        ("account_no", "١٠٠٢٠٠٣٠٠٤٠١"),
        ("account_no", "10020030040a"),
        ("period", "٢٠٢٥-03"),
    ],
)
def test_non_ascii_digits_exponents_and_floats_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        _Sample.model_validate(_sample(**{field: value}))
