"""Canonical events, one module per publishing service (`<service>.py`).

Every module here is imported (and so registered) when the package is, so a new service's events
need no edit to this file.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
