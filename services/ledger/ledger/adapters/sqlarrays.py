"""Array parameters for batch statements, cheap to send.

psycopg dumps a Python list element by element in Python (its array dumper has no C path): for the
ledger's batches (tens of elements per event) that was a tenth of the worker's CPU. Values whose text
form has no character that is special in an array literal (digits, account numbers, service codes,
periods, stream ids, UUIDs, ISO timestamps: never `{ } , " \\`, space or empty) are sent as ONE text
literal instead, `'{a,b,c}'`, which PostgreSQL parses in C (`%s::int8[]`, `%s::text[]`, ...). Free
text (banks, tariffs, reasons, payment ids, JSON) and anything that may be NULL keeps psycopg's binary
arrays (`%b`).
"""

from __future__ import annotations

from collections.abc import Iterable


def literal(values: Iterable[object]) -> str:
    """`{v1,v2,...}` of values whose `str()` needs no quoting in an array literal (see the module doc)."""
    return "{" + ",".join(map(str, values)) + "}"
