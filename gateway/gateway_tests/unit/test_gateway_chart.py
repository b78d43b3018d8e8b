"""The consumption chart: accessible SVG drawn on the server."""

from __future__ import annotations

import re
from decimal import Decimal

from gateway.domain.chart import Month, bar_chart_svg, nice_ceiling

MONTHS = ["янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"]


def test_axis_maximum_is_a_readable_number() -> None:
    assert nice_ceiling(Decimal("0")) == 10
    assert nice_ceiling(Decimal("87")) == 100
    assert nice_ceiling(Decimal("120")) == 200
    assert nice_ceiling(Decimal("201")) == 500
    assert nice_ceiling(Decimal("500")) == 500
    assert nice_ceiling(Decimal("0.4")) == Decimal("0.5")


def test_the_chart_has_a_bar_per_month_with_text_alternatives_and_no_inline_styles() -> None:
    months = [Month(f"2024-{m:02d}", Decimal(m * 20)) for m in range(1, 13)] + [
        Month(f"2025-{m:02d}", Decimal(0), estimated=m == 3) for m in range(1, 13)
    ]
    svg = bar_chart_svg(
        months,
        title="Потребление <кВт·ч>",
        description="24 месяца",
        unit="кВт·ч",
        month_names=MONTHS,
        estimated_label="расчётное",
    )
    assert (
        svg.startswith("<svg") and 'role="img"' in svg and 'aria-labelledby="chart-title chart-desc"' in svg
    )
    assert '<title id="chart-title">Потребление &lt;кВт·ч&gt;</title>' in svg
    assert len(re.findall(r"<rect ", svg)) == 24
    assert "<title>дек 24: 240 кВт·ч</title>" in svg
    assert "(расчётное)" in svg
    assert "style=" not in svg and "<script" not in svg


def test_an_empty_history_still_draws_axes() -> None:
    svg = bar_chart_svg([], title="t", description="d", unit="кВт·ч", month_names=MONTHS, estimated_label="e")
    assert "<rect" not in svg and "<line" in svg
