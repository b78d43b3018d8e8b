"""PostgreSQL access through psycopg 3: an async connection pool per process."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

Connection = AsyncConnection[TupleRow]


async def open_pool(dsn: str, *, max_size: int = 10, name: str = "pool") -> AsyncConnectionPool[Connection]:
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        dsn, min_size=1, max_size=max_size, open=False, name=name, kwargs={"autocommit": True}
    )
    await pool.open(wait=True, timeout=30)
    return pool
