"""Events the receipts service publishes on `receipts.events.v1`.

Streams: `receipt:{account_no}:{period}` (the bill's issue, then one EBillSent per address it was
mailed to), `ebill:{account_no}:{user_id}` (a user's e-bill subscription for an account).
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import StringConstraints

from contracts.money import Money
from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic
from contracts.types import AccountNo, PeriodStr

TOPIC = canonical_topic("receipts")

Email = Annotated[str, StringConstraints(min_length=3, max_length=254)]
Language = Literal["ru", "kk", "en"]
ContentHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


def receipt_stream(account_no: str, period: str) -> str:
    return f"receipt:{account_no}:{period}"


def ebill_stream(account_no: str, user_id: uuid.UUID | str) -> str:
    return f"ebill:{account_no}:{user_id}"


@registry.register("ReceiptIssued", version=1, topic=TOPIC)
class ReceiptIssued(EventPayload):
    """The monthly bill (счёт-квитанция) of an account for a period was issued: a frozen snapshot whose
    SHA-256 is `content_hash`. `amount_due` is never negative; an overpayment is in `overpayment`."""

    receipt_id: uuid.UUID
    account_no: AccountNo
    period: PeriodStr
    amount_due: Money
    overpayment: Money
    due_date: date
    content_hash: ContentHash


@registry.register("EBillSubscribed", version=1, topic=TOPIC)
class EBillSubscribed(EventPayload):
    """The user's e-bills for the account now go to `email` (replacing any earlier address of this user)."""

    account_no: AccountNo
    user_id: uuid.UUID
    email: Email
    language: Language = "ru"


@registry.register("EBillUnsubscribed", version=1, topic=TOPIC)
class EBillUnsubscribed(EventPayload):
    """The user no longer receives e-bills for the account."""

    account_no: AccountNo
    user_id: uuid.UUID
    email: Email


@registry.register("EBillSent", version=1, topic=TOPIC)
class EBillSent(EventPayload):
    """The bill was mailed (with its PDF) to one address; at most once per bill and address."""

    receipt_id: uuid.UUID
    account_no: AccountNo
    period: PeriodStr
    email: Email
    message_id: Annotated[str, StringConstraints(min_length=1, max_length=300)]
