"""Equal immutable values held once.

The worker's aggregate cache keeps many events in memory (`adapters/streams.AggregateCache`); most of
their text and dates repeat (a few banks, one date per day, a tariff text per month), so one object per
distinct value, not one per event, lets the same memory hold more aggregates. Bounded: past
`MAX_DISTINCT` values, a new value is kept as it is (unusual input costs memory per event, not a table
that grows forever).
"""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")

MAX_DISTINCT = 4096
_values: dict[tuple[type, object], object] = {}


def shared(value: T) -> T:
    """The one held object equal to `value` (of the same type), or `value` itself."""
    key = (type(value), value)
    found = _values.get(key)
    if found is not None:
        return found  # type: ignore[return-value]  # same type and equal: the key says so
    if len(_values) < MAX_DISTINCT:
        _values[key] = value
    return value
