"""Events the identity service publishes on `identity.events.v1`. Stream: `user:{user_id}`.

They describe a user's registration, credentials and profile. They never carry password material
(no password, no hash) and no tokens (no reset, confirmation, refresh or access token, nor their hashes):
a consumer learns *that* a password changed, never anything that would help to guess or reuse it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, StringConstraints

from contracts.registry import EventPayload, registry
from contracts.topics import canonical_topic

TOPIC = canonical_topic("identity")

Email = Annotated[str, StringConstraints(min_length=3, max_length=254)]
FullName = Annotated[str, StringConstraints(min_length=2, max_length=150)]
Language = Literal["ru", "kk", "en"]
PasswordChangeVia = Literal["change", "reset"]


def user_stream(user_id: uuid.UUID | str) -> str:
    return f"user:{user_id}"


@registry.register("UserRegistered", version=1, topic=TOPIC)
class UserRegistered(EventPayload):
    """A user registered with an e-mail address (not yet verified), a full name (ФИО) and a language."""

    user_id: uuid.UUID
    email: Email
    full_name: FullName
    language: Language


@registry.register("PasswordChanged", version=1, topic=TOPIC)
class PasswordChanged(EventPayload):
    """The user's password changed: by the user (`change`, knowing the current one) or by a reset link
    (`reset`, which also proves the e-mail address). The other sessions were revoked."""

    user_id: uuid.UUID
    via: PasswordChangeVia


@registry.register("EmailChangeRequested", version=1, topic=TOPIC)
class EmailChangeRequested(EventPayload):
    """The user asked to change the address; it changes only when the link sent to the new one is used."""

    user_id: uuid.UUID
    change_id: uuid.UUID
    new_email: Email
    expires_at: AwareDatetime


@registry.register("EmailChanged", version=1, topic=TOPIC)
class EmailChanged(EventPayload):
    """The new address was confirmed (and so verified) and replaced the old one."""

    user_id: uuid.UUID
    change_id: uuid.UUID
    old_email: Email
    new_email: Email


@registry.register("FullNameChanged", version=1, topic=TOPIC)
class FullNameChanged(EventPayload):
    """The user changed their full name (ФИО), normalized (single spaces, no surrounding blanks)."""

    user_id: uuid.UUID
    full_name: FullName


@registry.register("LanguageChanged", version=1, topic=TOPIC)
class LanguageChanged(EventPayload):
    """The user chose the language of the e-mails they receive (ru, kk or en)."""

    user_id: uuid.UUID
    language: Language
