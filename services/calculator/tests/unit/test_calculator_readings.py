"""Reading validation (RATING.md §5): one test per problem code, and the accepted cases around them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import get_args

import pytest

from calculator.domain.errors import MESSAGES_RU
from calculator.domain.rating import MeterReading, MeterReplacement
from calculator.domain.readings import MeterInfo, ProblemCode, ReadingProblem, validate_reading

TODAY = date(2025, 9, 10)
METER = MeterInfo(serial="A-123", digits=5, installed_on=date(2024, 1, 15), initial_reading=Decimal("0.00"))
PREVIOUS = MeterReading(date(2025, 8, 10), Decimal("1000.00"))  # 31 days before 2025-09-10


def validate(
    value: str,
    day: date = TODAY,
    *,
    previous: MeterReading | None = PREVIOUS,
    meter: MeterInfo = METER,
    average: str | None = None,
    confirm: bool = False,
    replacement: MeterReplacement | None = None,
) -> list[ReadingProblem]:
    return validate_reading(
        MeterReading(day, Decimal(value)),
        previous,
        meter,
        TODAY,
        None if average is None else Decimal(average),
        confirm,
        replacement,
    )


def codes(problems: list[ReadingProblem]) -> list[str]:
    return [p.code for p in problems]


def test_a_plain_reading_is_accepted() -> None:
    assert validate("1100.00") == []


def test_date_in_future() -> None:
    problems = validate("1100.00", date(2025, 9, 11))
    assert codes(problems) == ["date_in_future"]
    assert problems[0].params["reading_date"] == "2025-09-11"


@pytest.mark.parametrize("day", [date(2025, 8, 10), date(2025, 8, 1)])
def test_not_after_previous(day: date) -> None:
    problems = validate("1100.00", day)
    assert codes(problems) == ["not_after_previous"]
    assert problems[0].params["previous_date"] == "2025-08-10"


def test_before_meter_install() -> None:
    problems = validate("10.00", date(2024, 1, 14), previous=None)
    assert codes(problems) == ["before_meter_install"]
    assert problems[0].params["installed_on"] == "2024-01-15"


def test_on_the_install_date_is_allowed() -> None:
    assert validate("10.00", date(2024, 1, 15), previous=None) == []


def test_exceeds_meter_capacity() -> None:
    """5 digits: 99999.99 fits, 100000.00 does not."""
    assert validate("99999.99") == []
    problems = validate("100000.00")
    assert codes(problems) == ["exceeds_meter_capacity"]
    assert problems[0].params == {"value": "100000.00", "digits": "5", "max_value": "99999.99"}


def test_too_many_decimals() -> None:
    assert codes(validate("1100.001")) == ["too_many_decimals"]
    assert validate("1100.100") == []  # 1100.10: trailing zero, two decimals of value


def test_negative() -> None:
    assert codes(validate("-1.00")) == ["negative"]


def test_not_a_number() -> None:
    assert codes(validate("NaN")) == ["not_a_number"]
    assert codes(validate("Infinity")) == ["not_a_number"]


def test_less_than_previous() -> None:
    problems = validate("999.99")
    assert codes(problems) == ["less_than_previous"]
    assert problems[0].params["previous_value"] == "1000.00"
    assert problems[0].message_ru == "Показание меньше предыдущего (1000.00)"


def test_lower_by_rollover_is_accepted() -> None:
    """5 digits: previous 99900.00 ≥ 90000, new 50.00 < 10000: q = 100000 − 99900 + 50 = 150.00."""
    assert validate("50.00", previous=MeterReading(date(2025, 8, 10), Decimal("99900.00"))) == []


def test_lower_after_replacement_is_accepted() -> None:
    """Old final 1040.00 (q_old = 40.00); new meter from 0.00, now 12.00: lower than 1000.00, allowed."""
    new_meter = MeterInfo("B-777", 6, date(2025, 8, 20), Decimal("0.00"))
    replacement = MeterReplacement(date(2025, 8, 20), Decimal("1040.00"), Decimal("0.00"), 6)
    assert validate("12.00", meter=new_meter, replacement=replacement) == []


def test_less_than_initial_reading_after_replacement() -> None:
    new_meter = MeterInfo("B-777", 6, date(2025, 8, 20), Decimal("5.00"))
    replacement = MeterReplacement(date(2025, 8, 20), Decimal("1040.00"), Decimal("5.00"), 6)
    problems = validate("4.00", meter=new_meter, replacement=replacement)
    assert codes(problems) == ["less_than_initial_reading"]
    assert problems[0].params["initial_reading"] == "5.00"


def test_replacement_inconsistent() -> None:
    """The old meter's final reading 990.00 is below the previous reading 1000.00."""
    new_meter = MeterInfo("B-777", 6, date(2025, 8, 20), Decimal("0.00"))
    replacement = MeterReplacement(date(2025, 8, 20), Decimal("990.00"), Decimal("0.00"), 6)
    assert codes(validate("12.00", meter=new_meter, replacement=replacement)) == ["replacement_inconsistent"]


def test_first_reading_is_compared_with_the_initial_reading() -> None:
    meter = MeterInfo("C-1", 5, date(2025, 1, 1), Decimal("500.00"))
    assert codes(validate("400.00", previous=None, meter=meter)) == ["less_than_initial_reading"]
    assert validate("600.00", previous=None, meter=meter) == []


def test_implausible_consumption() -> None:
    """31 days since the previous reading, average 3.00 kWh/day: the limit is 3 × 3.00 × 31 = 279.00 kWh.

    1000.00 → 1279.00 (q = 279.00, exactly 3×) is accepted; → 1279.01 (279.01 kWh, 9.00 kWh/day) is not.
    """
    assert validate("1279.00", average="3.00") == []
    problems = validate("1279.01", average="3.00")
    assert codes(problems) == ["implausible_consumption"]
    assert problems[0].params == {
        "consumption_kwh": "279.01",
        "days": "31",
        "daily_kwh": "9.00",
        "average_daily_kwh": "3.00",
        "limit_daily_kwh": "9.00",
    }
    assert "подтвердите" in problems[0].message_ru


def test_implausible_consumption_is_accepted_with_confirmation() -> None:
    assert validate("5000.00", average="3.00", confirm=True) == []


def test_no_average_means_no_implausibility_check() -> None:
    assert validate("50000.00", average=None) == []


def test_problems_of_dates_and_values_are_all_reported() -> None:
    problems = validate("-5", date(2025, 9, 11))
    assert codes(problems) == ["date_in_future", "negative"]


def test_every_problem_code_has_a_russian_message() -> None:
    for code in get_args(ProblemCode):
        assert code in MESSAGES_RU
        assert ReadingProblem(code, {}).message_ru  # formats even without params
