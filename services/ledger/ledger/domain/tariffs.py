"""The tariff text a period row shows («Тариф» of «Выписка по услуге»), from a charge's rated lines.

A charge's lines (RATING.md §4) are pieces in date order (the interval is split where the tariff row or
the VAT rate changes) and, within a piece, the tier lines 1, 2, 3 or one flat line. The text names the
net rates applied, as the bill does:

- flat: ``31.85 ₸/кВт·ч``;
- tiered: ``дифф.: 28.95/38.22/47.77 ₸/кВт·ч`` (tiers 1/2/3);
- a charge whose pieces have different rates lists each distinct text once, in date order, joined
  with ``; `` (e.g. ``16.36 ₸/кВт·ч; 31.85 ₸/кВт·ч`` across the 2025-07-01 change).

Rates keep every significant decimal but at least two (``31.8500`` → ``31.85``, ``12.345`` → ``12.345``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

UNIT = "₸/кВт·ч"
MAX_LENGTH = 200


@dataclass(frozen=True, slots=True)
class RatedLine:
    from_date: date
    to_date: date
    tier: str  # "1", "2", "3" or "flat"
    rate: Decimal


def format_rate(rate: Decimal) -> str:
    normalized = rate.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        normalized = normalized.quantize(Decimal("0.01"))
    return f"{normalized:f}"


def tariff_text(lines: Iterable[RatedLine]) -> str | None:
    """The tariff description of a charge, or None when it has no lines."""
    pieces: dict[tuple[date, date], dict[str, Decimal]] = {}
    for line in lines:
        pieces.setdefault((line.from_date, line.to_date), {})[line.tier] = line.rate
    texts: list[str] = []
    for _, rates in sorted(pieces.items()):
        if "flat" in rates:
            text = f"{format_rate(rates['flat'])} {UNIT}"
        else:
            tiers = "/".join(format_rate(rates[t]) for t in ("1", "2", "3") if t in rates)
            text = f"дифф.: {tiers} {UNIT}"
        if text not in texts:
            texts.append(text)
    if not texts:
        return None
    joined = "; ".join(texts)
    return joined if len(joined) <= MAX_LENGTH else joined[: MAX_LENGTH - 1] + "…"
