"""Canonical events, one module per publishing service. Importing a module registers its events."""

from contracts.events import accounts as accounts
from contracts.events import calculator as calculator
from contracts.events import ledger as ledger

__all__ = ["accounts", "calculator", "ledger"]
