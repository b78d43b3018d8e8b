"""The calculator service's internal HTTP API (tariffs, readings, rating, billing run). Only the gateway calls it."""

from __future__ import annotations

from service_runtime.app import create_service_app

from calculator.settings import MIGRATIONS_DIR, CalculatorSettings

settings = CalculatorSettings()
app = create_service_app(settings, title="calculator (internal)", migrations_dir=MIGRATIONS_DIR)
