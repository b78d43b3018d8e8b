"""Links between users and an account, stream `account-links:{no}`: who proved ownership of it.

Several users may link one account (family members). Linking twice adds nothing; unlinking removes
only that user's link, and unlinking an account the user hasn't linked is `NotLinked`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from accounts.domain.errors import NotLinked
from contracts.events.accounts import AccountLinked, AccountUnlinked

LinkEvent = AccountLinked | AccountUnlinked


@dataclass(frozen=True, slots=True)
class AccountLinks:
    account_no: str
    users: frozenset[uuid.UUID] = frozenset()
    version: int = 0

    @classmethod
    def replay(cls, account_no: str, events: Iterable[LinkEvent]) -> AccountLinks:
        links = cls(account_no)
        for event in events:
            links = links.apply(event)
        return links

    def apply(self, event: LinkEvent) -> AccountLinks:
        if isinstance(event, AccountLinked):
            users = self.users | {event.user_id}
        else:
            users = self.users - {event.user_id}
        return AccountLinks(self.account_no, users, self.version + 1)


def decide_link(links: AccountLinks, user_id: uuid.UUID) -> list[AccountLinked]:
    if user_id in links.users:
        return []
    return [AccountLinked(account_no=links.account_no, user_id=user_id)]


def decide_unlink(links: AccountLinks, user_id: uuid.UUID) -> list[AccountUnlinked]:
    if user_id not in links.users:
        raise NotLinked(f"user {user_id} has not linked account {links.account_no}")
    return [AccountUnlinked(account_no=links.account_no, user_id=user_id)]
