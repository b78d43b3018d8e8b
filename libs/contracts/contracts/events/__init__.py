"""Canonical events, one module per publishing service. Importing a module registers its events."""

from contracts.events import accounts as accounts

__all__ = ["accounts"]
