"""PostgreSQL access through psycopg 3: an async connection pool per process."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

Connection = AsyncConnection[TupleRow]


async def open_pool(dsn: str, *, max_size: int = 10, name: str = "pool") -> AsyncConnectionPool[Connection]:
    # check: a pooled connection is tested (one empty round trip) before it is handed out, so the
    # connections a PostgreSQL restart killed are replaced instead of failing the next requests.
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        open=False,
        name=name,
        kwargs={"autocommit": True},
        check=AsyncConnectionPool.check_connection,
    )
    await pool.open(wait=True, timeout=30)
    return pool
