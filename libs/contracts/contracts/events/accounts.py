"""Events the accounts service publishes on `accounts.events.v1`."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic
from contracts.types import ShortText

TOPIC = canonical_topic("accounts")

OfficeCode = Annotated[str, StringConstraints(min_length=1, max_length=20)]


def district_office_stream(code: str) -> str:
    return f"district-office:{code}"


@registry.register("DistrictOfficeChanged", version=1, topic=TOPIC)
class DistrictOfficeChanged(EventPayload):
    """A district office (РОЭС) was registered or its contacts changed."""

    code: OfficeCode
    name: ShortText
    address: ShortText
    phone: ShortText
    hours: ShortText
