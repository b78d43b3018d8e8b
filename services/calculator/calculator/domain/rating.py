"""The rating engine: RATING.md §4, exactly. Pure: no I/O, no clock, Decimal only.

One engine, two callers: the monthly billing run / reading stream, and the what-if calculator.

How the rules are implemented (and the choices RATING.md leaves to us):

1. `days = current.date − previous.date` in whole days, at least 1 (`not_after_previous` otherwise).
2. Consumption (`consumption_between`):
   - `new ≥ previous`: `q = new − previous`;
   - `new < previous`: a rollover only when `previous ≥ 0.9 × 10^digits` and `new < 0.1 × 10^digits`,
     then `q = 10^digits − previous + new`; otherwise `less_than_previous`;
   - after a meter replacement: `q = (old_final − previous) + (new − new_initial)`. Each term must be
     ≥ 0 (`replacement_inconsistent`, `less_than_initial_reading`): RATING.md gives no rollover rule
     across a replacement, and a meter is not expected to roll over between its last reading and its
     removal or in its first days.
3. The interval is cut at every date strictly between the reading dates on which a tariff row or a VAT
   rate takes effect (`TariffCatalog.change_dates_between`). Pieces are half-open: a piece
   `[from_date, to_date)` covers the days `from_date … to_date − 1`, so a line's `to_date` is the first
   day *not* in it (the next piece's `from_date`, or the new reading's date for the last piece). The
   piece is rated with the row and VAT rate in force on `from_date`.
   Consumption is allocated in proportion to days, `q_i = round_half_up(q × d_i / days, 0.01)`, the
   last piece taking the remainder. Choice: with four or more pieces and a tiny `q` the literal rule
   could leave the last piece a *negative* remainder (e.g. q = 0.02 over four 1-day pieces: 0.01 +
   0.01 + 0.01 + (−0.01)); we then cap each piece at what is left (`min(q_i, q − allocated)`), which
   is the literal rule whenever the literal rule gives no negative kWh.
4. Per piece: `flat` is one line `q_i × flat`; `tiered` computes `L1`, `L2` (`norm × n × d_i / 30.5`,
   half-up to 0.01 kWh) and takes tier 1 = `min(q_i, L1)`, tier 2 = `min(q_i − tier1, L2 − L1)`,
   tier 3 = the rest. Every line's amount is `round_half_up(kWh × rate, 0.01)`. A `tiered` account
   with 0 residents is rated `flat`, and the result says so (`fallback_reason`).
5. Net total = Σ line amounts; VAT = Σ over pieces of `round_half_up(piece net × piece VAT rate)`;
   total = net total + VAT.
6. All three tier lines of a piece are listed even at 0 kWh; `limit_kwh` is the cumulative bound
   (`L1` for tier 1, `L2` for tier 2; `None` for tier 3 and flat).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from contracts.money import ZERO, round_half_up

from .errors import RatingError
from .quantities import is_finite_two_decimals, multiply_round, power_of_ten, prorate
from .tariffs import TariffCatalog

TariffOption = Literal["flat", "tiered"]
Tier = Literal["1", "2", "3", "flat"]

TARIFF_OPTIONS: tuple[TariffOption, ...] = ("flat", "tiered")

# `fallback_reason` of a `tiered` account rated on `flat` because it has no registered resident.
FALLBACK_NO_RESIDENTS = "tiered_without_residents"
FALLBACK_MESSAGES_RU = {
    FALLBACK_NO_RESIDENTS: (
        "Дифференцированный тариф применяется при наличии хотя бы одного прописанного жильца; "
        "расчёт выполнен по единому тарифу"
    ),
}

_ROLLOVER_HIGH = Decimal("0.9")
_ROLLOVER_LOW = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class AccountAttributes:
    """What rating reads of an account, as it stands on the new reading's date (RATING.md §1).

    `meter_digits` is the number of whole digits of the meter the readings are taken on; when a
    `MeterReplacement` is passed to `rate`, the new meter's digits are the replacement's `new_digits`.
    """

    tariff_option: TariffOption
    residents: int
    electric_stove: bool
    living_alone: bool
    meter_digits: int

    def __post_init__(self) -> None:
        if self.tariff_option not in TARIFF_OPTIONS:
            raise RatingError("invalid_attributes", detail=f"unknown tariff option {self.tariff_option!r}")
        if self.residents < 0:
            raise RatingError("invalid_attributes", detail="residents must be ≥ 0")
        if not 1 <= self.meter_digits <= 12:
            raise RatingError("invalid_attributes", detail="meter digits must be between 1 and 12")


@dataclass(frozen=True, slots=True)
class MeterReading:
    """A meter reading: a local date (Asia/Almaty) and a value in kWh with at most 2 decimals."""

    date: dt.date
    value: Decimal


@dataclass(frozen=True, slots=True)
class MeterReplacement:
    """A meter replaced on `replaced_on`, after the previous reading and no later than the new one."""

    replaced_on: dt.date
    old_final_reading: Decimal
    new_initial_reading: Decimal
    new_digits: int


@dataclass(frozen=True, slots=True)
class RatingLine:
    """One line of «Расчёт начисления по счётчику».

    The piece is the half-open day range `[from_date, to_date)`: `to_date` is the first day not in it.
    `limit_kwh` is the tier's cumulative upper bound for the piece (`L1` for tier "1", `L2` for tier
    "2"), `None` for tier "3" and "flat". `rate` is the net rate (KZT/kWh, VAT excluded) and `amount`
    the net amount, `round_half_up(kwh × rate, 0.01)`.
    """

    from_date: dt.date
    to_date: dt.date
    tier: Tier
    limit_kwh: Decimal | None
    kwh: Decimal
    rate: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class RatedPiece:
    """A piece `[from_date, to_date)` of the interval with its own tariff row and VAT rate.

    `vat = round_half_up(net × vat_rate, 0.01)`.
    """

    from_date: dt.date
    to_date: dt.date
    days: int
    kwh: Decimal
    tariff_effective_from: dt.date
    vat_effective_from: dt.date
    vat_rate: Decimal
    lines: tuple[RatingLine, ...]
    net: Decimal
    vat: Decimal

    @property
    def total(self) -> Decimal:
        return self.net + self.vat


@dataclass(frozen=True, slots=True)
class RatedInterval:
    """A consumption rated over `[from_date, to_date)` (RATING.md §4.3-§4.6)."""

    from_date: dt.date
    to_date: dt.date
    days: int
    consumption_kwh: Decimal
    tariff_option_requested: TariffOption
    tariff_option_applied: TariffOption
    fallback_reason: str | None
    pieces: tuple[RatedPiece, ...]
    lines: tuple[RatingLine, ...]
    net_total: Decimal
    vat: Decimal
    total: Decimal

    @property
    def fell_back_to_flat(self) -> bool:
        return self.fallback_reason is not None

    @property
    def fallback_message_ru(self) -> str | None:
        return FALLBACK_MESSAGES_RU.get(self.fallback_reason) if self.fallback_reason else None


@dataclass(frozen=True, slots=True)
class RatingResult(RatedInterval):
    """The rating of a new reading from the previous one: everything of `RatedInterval` plus the readings.

    `rollover` says the consumption went through the meter's rollover (§4.2); `replacement` is the
    meter replacement the consumption was computed across, if any.
    """

    previous: MeterReading
    current: MeterReading
    rollover: bool
    replacement: MeterReplacement | None


# --- §4.2: consumption -----------------------------------------------------------------------------


def check_reading_value(value: Decimal, digits: int | None) -> None:
    """A reading is a finite, non-negative decimal with at most 2 fractional digits, below `10^digits`.

    `digits=None` skips the capacity check. Raises `RatingError` with the reading-rule code.
    """
    if not isinstance(value, Decimal) or not value.is_finite():
        raise RatingError("not_a_number")
    if not is_finite_two_decimals(value):
        raise RatingError("too_many_decimals", value=str(value))
    if value < 0:
        raise RatingError("negative", value=str(value))
    if digits is not None:
        capacity = power_of_ten(digits)
        if value >= capacity:
            raise RatingError(
                "exceeds_meter_capacity",
                value=str(value),
                digits=str(digits),
                max_value=str(round_half_up(capacity - Decimal("0.01"))),
            )


def is_rollover(previous_value: Decimal, new_value: Decimal, digits: int) -> bool:
    """§4.2: `new < previous`, `previous ≥ 0.9 × 10^digits` and `new < 0.1 × 10^digits`."""
    capacity = power_of_ten(digits)
    return new_value < previous_value and (
        previous_value >= _ROLLOVER_HIGH * capacity and new_value < _ROLLOVER_LOW * capacity
    )


def consumption_between(
    previous_value: Decimal,
    new_value: Decimal,
    digits: int,
    replacement: MeterReplacement | None = None,
) -> tuple[Decimal, bool]:
    """`(q, rollover)` per RATING.md §4.2; raises `RatingError` when the new reading is rejected.

    `digits` is the whole digits of the meter both readings are on (ignored with a replacement).
    """
    if replacement is not None:
        on_old = replacement.old_final_reading - previous_value
        if on_old < 0:
            raise RatingError(
                "replacement_inconsistent",
                old_final_reading=str(replacement.old_final_reading),
                previous_value=str(previous_value),
            )
        on_new = new_value - replacement.new_initial_reading
        if on_new < 0:
            raise RatingError(
                "less_than_initial_reading",
                value=str(new_value),
                initial_reading=str(replacement.new_initial_reading),
            )
        return round_half_up(on_old + on_new), False
    if new_value >= previous_value:
        return round_half_up(new_value - previous_value), False
    if is_rollover(previous_value, new_value, digits):
        return round_half_up(power_of_ten(digits) - previous_value + new_value), True
    raise RatingError("less_than_previous", value=str(new_value), previous_value=str(previous_value))


# --- §4.3-§4.6: pieces, tiers, amounts -------------------------------------------------------------


def rate_consumption(
    from_date: dt.date,
    to_date: dt.date,
    consumption: Decimal,
    attrs: AccountAttributes,
    catalog: TariffCatalog,
) -> RatedInterval:
    """Rate `consumption` kWh used over the days `[from_date, to_date)` (§4.3-§4.6).

    Used by `rate` and directly by callers that already know the consumption (estimated charges).
    """
    days = (to_date - from_date).days
    if days < 1:
        raise RatingError(
            "not_after_previous", reading_date=to_date.isoformat(), previous_date=from_date.isoformat()
        )
    if not isinstance(consumption, Decimal) or not is_finite_two_decimals(consumption) or consumption < 0:
        raise RatingError(
            "invalid_consumption", detail=f"{consumption} is not a non-negative kWh with ≤ 2 decimals"
        )
    q = round_half_up(consumption)
    requested = attrs.tariff_option
    fallback = FALLBACK_NO_RESIDENTS if requested == "tiered" and attrs.residents == 0 else None
    applied: TariffOption = "flat" if fallback else requested

    bounds = (from_date, *catalog.change_dates_between(from_date, to_date), to_date)
    last = len(bounds) - 2
    allocated = ZERO
    pieces: list[RatedPiece] = []
    lines: list[RatingLine] = []
    net_total = ZERO
    vat_total = ZERO
    for index in range(last + 1):
        start, end = bounds[index], bounds[index + 1]
        piece_days = (end - start).days
        remaining = q - allocated
        piece_kwh = remaining if index == last else min(prorate(q, piece_days, days), remaining)
        allocated += piece_kwh
        row = catalog.tariff_on(start)
        vat = catalog.vat_on(start)
        if applied == "flat":
            piece_lines: tuple[RatingLine, ...] = (
                RatingLine(
                    start, end, "flat", None, piece_kwh, row.flat, multiply_round(piece_kwh, row.flat)
                ),
            )
        else:
            norms = row.norms or catalog.norms
            limit1, limit2 = norms.limits(
                electric_stove=attrs.electric_stove,
                living_alone=attrs.living_alone,
                residents=attrs.residents,
                days=piece_days,
            )
            kwh1 = min(piece_kwh, limit1)
            kwh2 = min(piece_kwh - kwh1, limit2 - limit1)
            kwh3 = piece_kwh - kwh1 - kwh2
            piece_lines = (
                RatingLine(start, end, "1", limit1, kwh1, row.tier1, multiply_round(kwh1, row.tier1)),
                RatingLine(start, end, "2", limit2, kwh2, row.tier2, multiply_round(kwh2, row.tier2)),
                RatingLine(start, end, "3", None, kwh3, row.tier3, multiply_round(kwh3, row.tier3)),
            )
        piece_net = sum((line.amount for line in piece_lines), ZERO)
        piece_vat = multiply_round(piece_net, vat.rate)
        pieces.append(
            RatedPiece(
                from_date=start,
                to_date=end,
                days=piece_days,
                kwh=piece_kwh,
                tariff_effective_from=row.effective_from,
                vat_effective_from=vat.effective_from,
                vat_rate=vat.rate,
                lines=piece_lines,
                net=piece_net,
                vat=piece_vat,
            )
        )
        lines.extend(piece_lines)
        net_total += piece_net
        vat_total += piece_vat
    return RatedInterval(
        from_date=from_date,
        to_date=to_date,
        days=days,
        consumption_kwh=q,
        tariff_option_requested=requested,
        tariff_option_applied=applied,
        fallback_reason=fallback,
        pieces=tuple(pieces),
        lines=tuple(lines),
        net_total=net_total,
        vat=vat_total,
        total=net_total + vat_total,
    )


def rate(
    previous: MeterReading,
    current: MeterReading,
    attrs: AccountAttributes,
    catalog: TariffCatalog,
    replacement: MeterReplacement | None = None,
) -> RatingResult:
    """Rate the new reading `current` from the `previous` accepted one (RATING.md §4).

    Raises `RatingError` (codes of `errors.MESSAGES_RU`) when the readings cannot be rated, and
    `CatalogError` (a `RatingError`) when no tariff row or VAT rate is in force on a piece's first day.
    """
    days = (current.date - previous.date).days
    if days < 1:
        raise RatingError(
            "not_after_previous",
            reading_date=current.date.isoformat(),
            previous_date=previous.date.isoformat(),
        )
    if replacement is None:
        check_reading_value(previous.value, attrs.meter_digits)
        check_reading_value(current.value, attrs.meter_digits)
    else:
        if not previous.date <= replacement.replaced_on <= current.date:
            raise RatingError(
                "invalid_replacement",
                detail=(f"replaced on {replacement.replaced_on}, outside {previous.date}…{current.date}"),
            )
        if not 1 <= replacement.new_digits <= 12:
            raise RatingError("invalid_replacement", detail="new meter digits must be between 1 and 12")
        check_reading_value(previous.value, None)
        check_reading_value(replacement.old_final_reading, None)
        check_reading_value(replacement.new_initial_reading, replacement.new_digits)
        check_reading_value(current.value, replacement.new_digits)
    q, rollover = consumption_between(previous.value, current.value, attrs.meter_digits, replacement)
    rated = rate_consumption(previous.date, current.date, q, attrs, catalog)
    return RatingResult(
        from_date=rated.from_date,
        to_date=rated.to_date,
        days=rated.days,
        consumption_kwh=rated.consumption_kwh,
        tariff_option_requested=rated.tariff_option_requested,
        tariff_option_applied=rated.tariff_option_applied,
        fallback_reason=rated.fallback_reason,
        pieces=rated.pieces,
        lines=rated.lines,
        net_total=rated.net_total,
        vat=rated.vat,
        total=rated.total,
        previous=previous,
        current=current,
        rollover=rollover,
        replacement=replacement,
    )
