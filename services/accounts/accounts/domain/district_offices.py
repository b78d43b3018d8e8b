"""District offices (РОЭС): the back-office's reference data, kept as an event-sourced stream per office."""

from __future__ import annotations

from contracts.backoffice import DistrictOfficeUpdated
from contracts.events.accounts import DistrictOfficeChanged


def decide_office_update(
    current: DistrictOfficeChanged | None, update: DistrictOfficeUpdated
) -> list[DistrictOfficeChanged]:
    """A change event only when something actually changed: re-sent reference data adds nothing."""
    proposed = DistrictOfficeChanged(
        code=update.code, name=update.name, address=update.address, phone=update.phone, hours=update.hours
    )
    return [] if current == proposed else [proposed]
