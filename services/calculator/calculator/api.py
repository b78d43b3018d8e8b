"""The calculator service's internal HTTP API (tariffs, readings, rating, billing run). Only the gateway calls it."""

from __future__ import annotations

from calculator.settings import MIGRATIONS_DIR, CalculatorSettings
from service_runtime.app import create_service_app

settings = CalculatorSettings()
app = create_service_app(settings, title="calculator (internal)", migrations_dir=MIGRATIONS_DIR)
