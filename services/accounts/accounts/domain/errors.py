"""The accounts domain's errors. The adapters map them: park, dead-letter, or answer 404/422."""

from __future__ import annotations


class AccountsError(Exception):
    """Base class of every error the accounts domain raises on purpose."""


class Rejected(AccountsError):
    """A command that can never be applied (business-invalid): its message goes to the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AccountNotOpened(AccountsError):
    """A change for an account that is not in the register (yet): the message is parked until it opens."""

    def __init__(self, account_no: str) -> None:
        super().__init__(f"account {account_no} is not opened")
        self.account_no = account_no


class NotLinked(AccountsError):
    """The user has no link to the account (unlinking it is a 404)."""
