"""The consumption history as an accessible SVG bar chart, drawn on the server (no chart library, no JS).

Pure: months and kWh in, SVG markup out. Every bar has a `<title>` (its month and value, read by
screen readers and shown as a tooltip); the chart has a title and a description, and the page shows
the same numbers as a table. Colours are attributes (no inline styles: the CSP forbids them).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from html import escape

WIDTH = 720
HEIGHT = 300
MARGIN_LEFT = 56
MARGIN_RIGHT = 12
MARGIN_TOP = 16
MARGIN_BOTTOM = 48
BAR_COLOUR = "#1f5fa8"
ESTIMATE_COLOUR = "#8a5a00"
AXIS_COLOUR = "#4a4a4a"
GRID_COLOUR = "#d0d0d0"


@dataclass(frozen=True, slots=True)
class Month:
    period: str  # YYYY-MM
    kwh: Decimal
    estimated: bool = False


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1/2/5 × 10^n at or above `value` (an axis maximum people can read)."""
    if value <= 0:
        return Decimal(10)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal(5), Decimal(10)):
        candidate = step.scaleb(exponent)
        if candidate >= value:
            return candidate
    return Decimal(10).scaleb(exponent + 1)  # pragma: no cover (10 × 10^n always fits)


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")


def _month_label(period: str, month_names: list[str]) -> str:
    year, month = period.split("-")
    return f"{month_names[int(month) - 1]} {year[2:]}"


def bar_chart_svg(
    months: list[Month],
    *,
    title: str,
    description: str,
    unit: str,
    month_names: list[str],
    estimated_label: str,
) -> str:
    """The SVG element (a string of markup, every text escaped)."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    top = nice_ceiling(max((m.kwh for m in months), default=Decimal(0)))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="chart" preserveAspectRatio="xMidYMid meet">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(description)}</desc>',
    ]
    for i in range(5):
        value = top * i / 4
        y = MARGIN_TOP + plot_h - float(value / top) * plot_h
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="{AXIS_COLOUR}">{escape(_fmt(value.quantize(Decimal(1), rounding=ROUND_CEILING)))}</text>'
        )
    parts.append(
        f'<text x="12" y="{MARGIN_TOP + plot_h / 2:.1f}" font-size="12" fill="{AXIS_COLOUR}" '
        f'transform="rotate(-90 12 {MARGIN_TOP + plot_h / 2:.1f})" text-anchor="middle">{escape(unit)}</text>'
    )
    if months:
        slot = plot_w / len(months)
        bar_w = max(2.0, slot * 0.7)
        label_every = 1 if len(months) <= 12 else 3
        for index, month in enumerate(months):
            x = MARGIN_LEFT + index * slot + (slot - bar_w) / 2
            h = float(month.kwh / top) * plot_h if top else 0.0
            y = MARGIN_TOP + plot_h - h
            colour = ESTIMATE_COLOUR if month.estimated else BAR_COLOUR
            label = _month_label(month.period, month_names)
            tooltip = f"{label}: {_fmt(month.kwh)} {unit}" + (
                f" ({estimated_label})" if month.estimated else ""
            )
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{escape(tooltip)}</title></rect>"
            )
            if index % label_every == 0 or index == len(months) - 1:
                cx = MARGIN_LEFT + index * slot + slot / 2
                parts.append(
                    f'<text x="{cx:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" font-size="11" '
                    f'text-anchor="middle" fill="{AXIS_COLOUR}">{escape(label)}</text>'
                )
    baseline = MARGIN_TOP + plot_h
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{baseline}" x2="{WIDTH - MARGIN_RIGHT}" y2="{baseline}" '
        f'stroke="{AXIS_COLOUR}" stroke-width="1"/>'
    )
    parts.append("</svg>")
    return "".join(parts)
