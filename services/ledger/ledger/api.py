"""The ledger service's internal HTTP API (money per account, service and period). Only the gateway calls it."""

from __future__ import annotations

from ledger.settings import MIGRATIONS_DIR, LedgerSettings
from service_runtime.app import create_service_app

settings = LedgerSettings()
app = create_service_app(settings, title="ledger (internal)", migrations_dir=MIGRATIONS_DIR)
