"""The identity service's internal HTTP API (users, credentials, sessions, profile). Only the gateway calls it."""

from __future__ import annotations

from service_runtime.app import create_service_app

from identity.settings import MIGRATIONS_DIR, IdentitySettings

settings = IdentitySettings()
app = create_service_app(settings, title="identity (internal)", migrations_dir=MIGRATIONS_DIR)
