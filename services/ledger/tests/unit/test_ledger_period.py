from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ledger.domain.period import Period, period_of_instant


def test_parse_and_format_round_trip() -> None:
    period = Period.parse("2025-03")
    assert period == Period(2025, 3)
    assert str(period) == "2025-03"
    assert period.format() == "2025-03"
    assert str(Period(987, 1)) == "0987-01"


@pytest.mark.parametrize(
    "text", ["2025-3", "2025-13", "2025-00", "25-03", " 2025-03", "2025-03\n", "2025/03", ""]
)
def test_parse_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


def test_constructor_validates() -> None:
    with pytest.raises(ValueError):
        Period(2025, 0)
    with pytest.raises(ValueError):
        Period(2025, 13)
    with pytest.raises(ValueError):
        Period(0, 1)


def test_next_and_prev_cross_years() -> None:
    assert Period(2024, 12).next() == Period(2025, 1)
    assert Period(2025, 1).prev() == Period(2024, 12)
    assert Period(2025, 5).next() == Period(2025, 6)
    assert Period(2025, 5).prev() == Period(2025, 4)


def test_ordering_is_chronological() -> None:
    periods = [Period(2025, 1), Period(2024, 12), Period(2024, 2), Period(2025, 10)]
    assert sorted(periods) == [Period(2024, 2), Period(2024, 12), Period(2025, 1), Period(2025, 10)]
    assert Period(2024, 12) < Period(2025, 1)
    assert Period(2025, 1).ordinal + 1 == Period(2025, 2).ordinal


def test_span_is_inclusive_and_empty_when_reversed() -> None:
    assert list(Period.span(Period(2024, 11), Period(2025, 2))) == [
        Period(2024, 11),
        Period(2024, 12),
        Period(2025, 1),
        Period(2025, 2),
    ]
    assert list(Period.span(Period(2025, 2), Period(2025, 2))) == [Period(2025, 2)]
    assert list(Period.span(Period(2025, 3), Period(2025, 2))) == []


def test_of_date_and_days() -> None:
    assert Period.of_date(date(2024, 2, 29)) == Period(2024, 2)
    assert Period(2024, 2).first_day == date(2024, 2, 1)
    assert Period(2024, 2).last_day == date(2024, 2, 29)
    assert Period(2025, 12).last_day == date(2025, 12, 31)
    assert Period(2025, 4).contains(date(2025, 4, 30))
    assert not Period(2025, 4).contains(date(2025, 5, 1))


def test_of_date_refuses_a_datetime() -> None:
    with pytest.raises(TypeError):
        Period.of_date(datetime(2025, 1, 31, 20, 0, tzinfo=UTC))


def test_instant_is_taken_in_almaty_time_utc_plus_5_since_march_2024() -> None:
    # 2025-02-28 19:00 UTC is 2025-03-01 00:00 in Almaty (UTC+5).
    assert period_of_instant(datetime(2025, 2, 28, 19, 0, tzinfo=UTC)) == Period(2025, 3)
    assert period_of_instant(datetime(2025, 2, 28, 18, 59, 59, tzinfo=UTC)) == Period(2025, 2)


def test_instant_before_march_2024_uses_utc_plus_6() -> None:
    # 2023-12-31 18:00 UTC was 2024-01-01 00:00 in Almaty (UTC+6 then).
    assert Period.of_instant(datetime(2023, 12, 31, 18, 0, tzinfo=UTC)) == Period(2024, 1)
    assert Period.of_instant(datetime(2023, 12, 31, 17, 59, tzinfo=UTC)) == Period(2023, 12)


def test_instant_in_the_repeated_hour_of_the_2024_change() -> None:
    # At 2024-03-01 00:00 (+06) clocks went back to 2024-02-29 23:00 (+05): 18:30 UTC is still February.
    assert Period.of_instant(datetime(2024, 2, 29, 18, 30, tzinfo=UTC)) == Period(2024, 2)
    assert Period.of_instant(datetime(2024, 2, 29, 19, 0, tzinfo=UTC)) == Period(2024, 3)


def test_instant_with_another_offset_is_converted() -> None:
    moscow = timezone(timedelta(hours=3))
    assert Period.of_instant(datetime(2025, 3, 31, 22, 0, tzinfo=moscow)) == Period(2025, 4)


def test_instant_must_be_aware() -> None:
    with pytest.raises(ValueError):
        Period.of_instant(datetime(2025, 3, 1, 0, 0))
