"""The receipts service's internal HTTP API (monthly bills and e-bills). Only the gateway calls it."""

from __future__ import annotations

from service_runtime.app import create_service_app

from receipts.settings import MIGRATIONS_DIR, ReceiptsSettings

settings = ReceiptsSettings()
app = create_service_app(settings, title="receipts (internal)", migrations_dir=MIGRATIONS_DIR)
