"""Fixtures every test directory shares (the local stack's connection details, fresh databases)."""

pytest_plugins = ["tests.support.stack"]
