"""E-mail addresses: syntax check and the case-insensitive identity of an address.

An address is kept as the user typed it (trimmed, domain in lower case) and compared case-insensitively:
`Ivan@Mail.kz` and `ivan@mail.kz` are the same user. The check is deliberately simple (no quoted local
parts, no IP literals): what a portal user types, and what every SMTP server accepts.
"""

from __future__ import annotations

import hashlib
import re

from identity.domain.errors import Violation

MAX_LENGTH = 254
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def normalize_email(raw: str) -> str:
    """The address to store: trimmed, the domain lower-cased (IDNA kept in its Unicode form)."""
    text = raw.strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    return f"{local}@{domain.lower()}"


def email_key(email: str) -> str:
    """What makes two addresses the same: the whole address in lower case (as the unique index does)."""
    return email.strip().lower()


def email_digest(email: str) -> str:
    """A stable pseudonym of an address, for rate-limit keys (no addresses in Redis key names)."""
    return hashlib.sha256(email_key(email).encode()).hexdigest()[:32]


def check_email(email: str, field: str = "email") -> list[Violation]:
    if not email:
        return [Violation(field, "email_required", "Укажите адрес e-mail")]
    if len(email) > MAX_LENGTH:
        return [
            Violation(field, "email_too_long", f"Адрес e-mail не может быть длиннее {MAX_LENGTH} символов")
        ]
    invalid = [Violation(field, "email_invalid", "Неверный формат адреса e-mail")]
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        return invalid
    if not _LOCAL.match(local):
        return invalid
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return invalid
    labels = ascii_domain.lower().split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or not _TLD.match(labels[-1]):
        return invalid
    return []


def mask_email(email: str) -> str:
    """`ivan.petrov@mail.kz` → `i***v@mail.kz`: enough to recognize one's own address, not to read it."""
    local, _, domain = email.rpartition("@")
    if len(local) <= 2:
        return f"{local[:1]}***@{domain}"
    return f"{local[0]}***{local[-1]}@{domain}"
