"""The gateway: the public API v1 (shared/design/PUBLIC_API.md) and, later, the portal pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.adapters.upstream import Upstream, UpstreamUnavailable
from gateway.settings import GatewaySettings
from service_runtime.app import create_service_app

settings = GatewaySettings()


class DistrictOffice(BaseModel):
    code: str = Field(examples=["02"])
    name: str = Field(examples=["Алмалинский РОЭС"])
    address: str = Field(examples=["г. Алматы, ул. Толе би, 101"])
    phone: str = Field(examples=["+7 727 356 99 99"])
    hours: str = Field(examples=["Пн–Пт 09:00–18:00"])


def upstreams(request: Request) -> dict[str, Upstream]:
    clients: dict[str, Upstream] = request.app.state.upstreams
    return clients


Upstreams = Annotated[dict[str, Upstream], Depends(upstreams)]
api = APIRouter(prefix="/api/v1")


@api.get("/district-offices", response_model=list[DistrictOffice], tags=["Reference"])
async def district_offices(clients: Upstreams) -> list[DistrictOffice]:
    """The district offices (РОЭС) with their contacts."""
    rows = await clients["accounts"].get_json("/internal/v1/district-offices")
    return [DistrictOffice.model_validate(row) for row in rows]


def _configure(app: FastAPI) -> None:
    app.state.upstreams = {
        name: Upstream(name, url, timeout_s=settings.upstream_timeout_s, attempts=settings.upstream_attempts)
        for name, url in {
            "identity": settings.identity_url,
            "accounts": settings.accounts_url,
            "ledger": settings.ledger_url,
            "calculator": settings.calculator_url,
            "receipts": settings.receipts_url,
        }.items()
    }
    app.include_router(api)

    @app.exception_handler(UpstreamUnavailable)
    async def upstream_down(request: Request, exc: UpstreamUnavailable) -> JSONResponse:
        return JSONResponse(
            {
                "type": "about:blank",
                "title": "Сервис временно недоступен",
                "status": 503,
                "detail": "Часть данных сейчас недоступна. Попробуйте позже.",
            },
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "5"},
        )


app = create_service_app(
    settings,
    title="Личный кабинет: public API",
    migrations_dir=None,
    uses_database=False,
    configure=_configure,
    openapi_url="/api/v1/openapi.json",
    docs_url="/api/v1/docs",
    redoc_url=None,
)
