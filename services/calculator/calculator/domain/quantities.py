"""Exact Decimal helpers shared by the rating rules.

Every rounding is `contracts.money.round_half_up` to 0.01 (RATING.md). Divisions (proration by days,
proportional allocation) are computed in a 60-digit context before that rounding, so a quotient is
never pre-rounded by the ambient 28-digit context: the quotients here are rationals whose
denominators are at most a few thousand (days, 61), so a true value is either exactly a tie or at
least ~1e-9 away from one, far above the 1e-40 resolution of the context.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

from contracts.money import TIYN, round_half_up

_WIDE = Context(prec=60, rounding=ROUND_HALF_EVEN)


def divide(numerator: Decimal, denominator: Decimal | int) -> Decimal:
    """`numerator / denominator` in a 60-digit context (not rounded to tiyn)."""
    return _WIDE.divide(numerator, Decimal(denominator))


def prorate(value: Decimal, part: Decimal | int, whole: Decimal | int) -> Decimal:
    """`round_half_up(value × part / whole, 0.01)`, the one proration rule of RATING.md §2-§3."""
    return round_half_up(_WIDE.divide(_WIDE.multiply(value, Decimal(part)), Decimal(whole)))


def multiply_round(a: Decimal, b: Decimal) -> Decimal:
    """`round_half_up(a × b, 0.01)`: a line amount or a VAT amount."""
    return round_half_up(_WIDE.multiply(a, b))


def is_finite_two_decimals(value: Decimal) -> bool:
    """True when `value` is a finite number with at most two fractional digits (1.230 counts as 1.23)."""
    if not value.is_finite():
        return False
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2:
        return True
    try:
        return _WIDE.quantize(value, TIYN) == value
    except InvalidOperation:
        return False


def power_of_ten(digits: int) -> Decimal:
    """`10^digits`: the capacity of a meter with `digits` whole digits (the first unreachable value)."""
    return _WIDE.power(Decimal(10), digits)
