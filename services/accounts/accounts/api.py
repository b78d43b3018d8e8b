"""The accounts service's internal HTTP API. Only the gateway (and sibling services) call it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI
from psycopg_pool import AsyncConnectionPool

from accounts.adapters.district_offices import list_district_offices
from accounts.settings import MIGRATIONS_DIR, AccountsSettings
from service_runtime.app import create_service_app, db_pool
from service_runtime.db import Connection

Pool = Annotated[AsyncConnectionPool[Connection], Depends(db_pool)]
router = APIRouter(prefix="/internal/v1")


@router.get("/district-offices")
async def district_offices(pool: Pool) -> list[dict[str, str]]:
    async with pool.connection() as conn:
        return await list_district_offices(conn)


def _routes(app: FastAPI) -> None:
    app.include_router(router)


settings = AccountsSettings()
app = create_service_app(
    settings, title="accounts (internal)", migrations_dir=MIGRATIONS_DIR, configure=_routes
)
