"""The e-mails identity sends, composed in the recipient's language at the moment of the change.

A composed message is stored in `outbound_mail` in the same transaction as the change, and the worker
delivers it later (see adapters/mail_sender.py): the request never waits for SMTP.
Nothing here ever includes a password. Links carry single-use tokens; such messages are `sensitive`
and their bodies are erased from the database once delivered.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

from identity.domain.languages import Language
from identity.i18n import format_local_time, translations

MailKind = Literal["password_reset", "password_changed", "email_change_confirmation", "email_change_notice"]


@dataclass(frozen=True, slots=True)
class ComposedMail:
    kind: MailKind
    to: str
    language: Language
    subject: str
    text: str
    html: str
    sensitive: bool  # carries a live token: the body is erased after delivery


@dataclass(frozen=True, slots=True)
class _Link:
    url: str
    label: str


def portal_link(base_url: str, path: str, token: str | None = None) -> str:
    query = f"?{urlencode({'token': token})}" if token is not None else ""
    return f"{base_url}{path}{query}"


def _render(
    kind: MailKind,
    to: str,
    language: Language,
    subject: str,
    blocks: list[str | _Link],
    *,
    sensitive: bool,
) -> ComposedMail:
    _ = translations(language).gettext
    footer = _(
        "This message was sent automatically by the AlmatyEnergoSbyt personal account; please do not reply to it."
    )
    text_parts: list[str] = []
    html_parts: list[str] = []
    for block in blocks:
        if isinstance(block, _Link):
            text_parts.append(block.url)
            url = html.escape(block.url, quote=True)
            html_parts.append(
                f'<p><a href="{url}">{html.escape(block.label)}</a><br><small>{url}</small></p>'
            )
        else:
            text_parts.append(block)
            html_parts.append(f"<p>{html.escape(block)}</p>")
    text = "\n\n".join(text_parts) + f"\n\n-- \n{footer}\n"
    body = "\n".join(html_parts)
    page = (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n<body>\n{body}\n"
        f'<hr><p style="color:#666"><small>{html.escape(footer)}</small></p>\n</body></html>\n'
    )
    return ComposedMail(kind, to, language, subject, text, page, sensitive)


def password_reset_mail(
    *, to: str, full_name: str, language: Language, link: str, ttl_minutes: int
) -> ComposedMail:
    _ = translations(language).gettext
    return _render(
        "password_reset",
        to,
        language,
        _("Password recovery"),
        [
            _("Hello, %(name)s!") % {"name": full_name},
            _("We received a request to reset the password of your personal account."),
            _("To set a new password, open this link:"),
            _Link(link, _("Set a new password")),
            _("The link is valid for %(minutes)d minutes and can be used only once.")
            % {"minutes": ttl_minutes},
            _("If you did not request a password reset, ignore this message: your password stays the same."),
        ],
        sensitive=True,
    )


def password_changed_mail(
    *,
    to: str,
    full_name: str,
    language: Language,
    changed_at: datetime,
    via: Literal["change", "reset"],
    recovery_link: str,
) -> ComposedMail:
    """The notice of a password change. It says what changed and when, never the password itself."""
    _ = translations(language).gettext
    how = (
        _("It was changed in the personal settings after signing in. All other sessions were signed out.")
        if via == "change"
        else _("It was changed with a password recovery link. All sessions were signed out.")
    )
    return _render(
        "password_changed",
        to,
        language,
        _("Your password was changed"),
        [
            _("Hello, %(name)s!") % {"name": full_name},
            _("The password of your personal account was changed on %(when)s (Almaty time).")
            % {"when": format_local_time(changed_at, language)},
            how,
            _("If it was you, nothing else is needed: use the new password from your next sign-in."),
            _(
                "If it wasn't you, restore access at once with password recovery, and tell our contact centre:"
            ),
            _Link(recovery_link, _("Recover the password")),
            _("For your security we never send passwords by e-mail."),
        ],
        sensitive=False,
    )


def email_change_confirmation_mail(
    *, to: str, full_name: str, language: Language, link: str, ttl_hours: int
) -> ComposedMail:
    _ = translations(language).gettext
    return _render(
        "email_change_confirmation",
        to,
        language,
        _("Confirm your new e-mail address"),
        [
            _("Hello, %(name)s!") % {"name": full_name},
            _("This address was given as the new e-mail address of a personal account."),
            _("To confirm it, open this link:"),
            _Link(link, _("Confirm the address")),
            _(
                "The link is valid for %(hours)d hours. Until the address is confirmed, the current one stays in use."
            )
            % {"hours": ttl_hours},
            _("If you did not ask for this, ignore this message."),
        ],
        sensitive=True,
    )


def email_change_notice_mail(
    *,
    to: str,
    full_name: str,
    language: Language,
    requested_at: datetime,
    new_email_masked: str,
    recovery_link: str,
) -> ComposedMail:
    _ = translations(language).gettext
    return _render(
        "email_change_notice",
        to,
        language,
        _("A change of your e-mail address was requested"),
        [
            _("Hello, %(name)s!") % {"name": full_name},
            _(
                "On %(when)s (Almaty time) a change of the e-mail address of your personal account to %(new_email)s was requested."
            )
            % {"when": format_local_time(requested_at, language), "new_email": new_email_masked},
            _("The address changes only after it is confirmed with the link sent to the new address."),
            _("If it wasn't you, change your password at once and tell our contact centre."),
            _Link(recovery_link, _("Recover the password")),
        ],
        sensitive=False,
    )
