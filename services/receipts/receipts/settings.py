"""Settings of the receipts service: RECEIPTS_* variables plus the shared ones (SMTP_HOST, SMTP_PORT, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class ReceiptsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECEIPTS_", extra="ignore")

    service_name: str = "receipts"

    # E-bill delivery (the worker's sender loop).
    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SMTP_HOST", "smtp_host"))
    smtp_port: int = Field(1025, validation_alias=AliasChoices("SMTP_PORT", "smtp_port"))
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False  # implicit TLS (port 465)
    smtp_start_tls: bool | None = None  # None: STARTTLS when the server offers it
    smtp_timeout_s: float = 20.0
    mail_from: str = "АО «АлматыЭнергоСбыт» <e-bill@esb.kz>"
    ebill_poll_interval_s: float = 5.0
    ebill_batch_size: int = 20
    ebill_max_attempts: int = 8  # then the delivery is marked failed (and logged)
    ebill_backoff_base_s: float = 30.0  # 30 s, 1 min, 2 min, ... capped at ebill_backoff_max_s
    ebill_backoff_max_s: float = 3600.0
    ebill_lease_s: float = 300.0  # a claimed delivery is retried after this if its sender died
    # A delivery waits this long for its bill's queued render (the renderer's), then renders it itself.
    ebill_render_wait_s: float = 120.0

    # Rendering PDFs at issue time (the worker's renderer, adapters/pdf_renderer.py).
    render_processes: int = Field(1, ge=0)  # render processes per worker; 0: the worker's own render thread
    render_niceness: int = Field(10, ge=0, le=19)  # render processes run at a lower CPU priority
    # The worker itself (issuing bills, e-bills) too, though less so: a bill is issued once the ledger
    # posted the period's charges, so it yields to the calculator and the ledger during a billing run.
    worker_niceness: int = Field(5, ge=0, le=19)
    # Before each batch, the renderer waits while the rest of the machine (all but this worker and its render
    # processes) uses more than this many cores: for one machine running everything (the local stack). 0:
    # never (Kubernetes: /proc/stat is the node's; the pods' CPU requests share it). At most
    # render_yield_max_s per batch, so a backlog still drains.
    render_yield_above_cores: float = Field(0.0, ge=0)
    render_yield_max_s: float = Field(30.0, ge=0)
    render_yield_check_s: float = Field(1.0, gt=0)
    render_poll_interval_s: float = 5.0
    render_max_attempts: int = 5  # then the render is marked failed (a download renders it on demand)
    render_backoff_base_s: float = 10.0  # 10 s, 20 s, 40 s, ... capped at render_backoff_max_s
    render_backoff_max_s: float = 600.0
    render_lease_s: float = 120.0  # a claimed render is retried after this if its renderer died
    # Bills claimed and printed together (Chromium: one document, split per bill; see adapters/pdf_batch.py;
    # measured ~3 × the bills per CPU-second of one at a time); 1: each bill alone.
    pdf_batch: int = Field(10, ge=1, le=50)

    # The PDF engine (adapters/rendering.py): Chromium's print-to-PDF (measured ~2–2.5 × WeasyPrint's bills
    # per CPU-second, see the README) or WeasyPrint; both print the same template. With "chromium", a bill
    # Chromium can't print (not installed, didn't start, timed out) is printed by WeasyPrint.
    pdf_engine: Literal["chromium", "weasyprint"] = "chromium"
    chromium_path: str | None = None  # None: Debian's /usr/lib/chromium/chromium (or /usr/bin/chromium)
    chromium_pages: int = Field(1, ge=1, le=16)  # bills in flight per process (API: on-demand renders)
    pdf_render_timeout_s: float = Field(30.0, gt=0)  # per bill, Chromium's load + print
