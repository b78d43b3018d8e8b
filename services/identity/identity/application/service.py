"""The identity use cases: registration, login and sessions, passwords, e-mail changes, profile.

Every change of a user is a decision of the aggregate (identity.domain.user) appended to its stream,
with the read model, the credentials, the one-time tokens and the mail to send in the same PostgreSQL
transaction. Sessions live in Redis; a change that must end sessions revokes them before its
transaction commits, so a failure can leave sessions revoked but never a change with sessions alive.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar, cast

from psycopg_pool import AsyncConnectionPool

from contracts.envelope import utc_now
from identity.adapters import postgres as db
from identity.adapters.keys import TokenSigner
from identity.adapters.password_hashing import PasswordHashingBusy, Passwords
from identity.adapters.postgres import EmailAlreadyUsed, UserRow, Users
from identity.adapters.sessions import RefreshOutcome, SessionStore, digest
from identity.adapters.throttle import LoginThrottle
from identity.application import mail
from identity.application.errors import (
    ConcurrentChange,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    LinkInvalid,
    PasswordUnchanged,
    RefreshTokenReused,
    TooManyAttempts,
    UserNotFound,
    WrongCurrentPassword,
)
from identity.domain import user as domain
from identity.domain.emails import check_email, mask_email, normalize_email
from identity.domain.errors import InvalidInput
from identity.domain.languages import Language
from identity.domain.user import User
from identity.settings import IdentitySettings
from service_runtime.db import Connection
from service_runtime.eventstore import ConcurrencyError

audit = logging.getLogger("identity.audit")

T = TypeVar("T")
CONCURRENCY_RETRIES = 3


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    user_id: uuid.UUID


def _audit(event: str, message: str, **fields: object) -> None:
    """One JSON log line per security-relevant fact (never a password or a token)."""
    level = logging.WARNING if event.endswith(("failed", "locked", "reused")) else logging.INFO
    audit.log(
        level, message, extra={"audit": event, **{k: str(v) for k, v in fields.items() if v is not None}}
    )


class IdentityService:
    def __init__(
        self,
        settings: IdentitySettings,
        pool: AsyncConnectionPool[Connection],
        users: Users,
        passwords: Passwords,
        sessions: SessionStore,
        throttle: LoginThrottle,
        signer: TokenSigner,
    ) -> None:
        self.settings = settings
        self._pool = pool
        self._users = users
        self._passwords = passwords
        self._sessions = sessions
        self._throttle = throttle
        self._signer = signer

    # --- helpers ----------------------------------------------------------------------------------
    async def _retrying(self, step: Callable[[Connection], Awaitable[T]]) -> T:
        """Runs `step` in a transaction; re-runs it when the user's stream moved meanwhile."""
        for attempt in range(CONCURRENCY_RETRIES):
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    return await step(conn)
            except ConcurrencyError:
                if attempt == CONCURRENCY_RETRIES - 1:
                    raise ConcurrentChange() from None
        raise AssertionError("unreachable")

    async def _load(self, conn: Connection, user_id: uuid.UUID) -> User:
        user = await self._users.load(conn, user_id)
        if user is None:
            raise UserNotFound()
        return user

    def _link(self, path: str, token: str | None = None) -> str:
        return mail.portal_link(self.settings.portal_base_url, path, token)

    async def _verify_current_password(self, user: User, password: str, client: str) -> str:
        """The current hash when `password` is right; counts a failure (and may lock out) otherwise."""
        lock = await self._throttle.check(user.email, client)
        if lock is not None:
            raise TooManyAttempts(lock.retry_after_s)
        async with self._pool.connection() as conn:
            current_hash = await db.password_hash(conn, user.user_id)
        if not await self._passwords.verify(current_hash, password):
            lock = await self._throttle.record_failure(user.email, client)
            _audit("current_password_failed", "wrong current password", user_id=user.user_id, client=client)
            if lock is not None:
                raise TooManyAttempts(lock.retry_after_s)
            raise WrongCurrentPassword()
        assert current_hash is not None
        return current_hash

    def _issue(self, user_id: uuid.UUID, session_id: str, refresh_token: str) -> TokenPair:
        access = self._signer.issue(user_id, session_id)
        return TokenPair(access.token, access.expires_in, refresh_token, session_id, user_id)

    # --- registration, login, sessions ------------------------------------------------------------
    async def register(self, email: str, password: str, full_name: str, language: Language) -> uuid.UUID:
        registration = domain.validate_registration(email, password, full_name, language)
        async with self._pool.connection() as conn:
            if await self._users.email_in_use(conn, registration.email):
                raise EmailTaken()
        password_hash = await self._passwords.hash(password)
        user_id = uuid.uuid4()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await self._users.save(conn, user_id, 0, domain.register(user_id, registration))
                await db.set_password_hash(conn, user_id, password_hash)
        except EmailAlreadyUsed:
            raise EmailTaken() from None
        _audit("user_registered", "user registered", user_id=user_id, language=language)
        return user_id

    async def login(self, email: str, password: str, *, client: str, user_agent: str) -> TokenPair:
        email = normalize_email(email)
        lock = await self._throttle.check(email, client)
        if lock is not None:
            _audit("login_locked", "login refused: locked out", email=email, client=client)
            raise TooManyAttempts(lock.retry_after_s)
        async with self._pool.connection() as conn:
            row = await self._users.by_email(conn, email)
            stored_hash = await db.password_hash(conn, row.user_id) if row else None
        if row is None or not await self._passwords.verify(stored_hash, password):
            if row is None:  # the same work as a wrong password: verify() ran against a dummy hash
                await self._passwords.verify(None, password)
            lock = await self._throttle.record_failure(email, client)
            _audit(
                "login_failed",
                "login failed",
                email=email,
                client=client,
                user_id=row.user_id if row else None,
                reason="unknown_email" if row is None else "wrong_password",
                locked=lock is not None,
            )
            if lock is not None:
                raise TooManyAttempts(lock.retry_after_s)
            raise InvalidCredentials()
        assert stored_hash is not None
        await self._throttle.record_success(email)
        await self._upgrade_hash(row.user_id, stored_hash, password)
        session = await self._sessions.create(row.user_id, client=client, user_agent=user_agent)
        _audit(
            "login_succeeded",
            "login succeeded",
            email=email,
            client=client,
            user_id=row.user_id,
            session_id=session.session_id,
        )
        return self._issue(row.user_id, session.session_id, session.refresh_token)

    async def _upgrade_hash(self, user_id: uuid.UUID, stored_hash: str, password: str) -> None:
        """A hash made with other argon2 parameters than the configured ones is replaced by one made with
        them (the password was just verified). Best effort: with every hashing slot taken, the sign-in
        goes on and the next one upgrades it."""
        if not self._passwords.needs_rehash(stored_hash):
            return
        try:
            new_hash = await self._passwords.hash(password)
        except PasswordHashingBusy:
            return
        async with self._pool.connection() as conn:
            await db.rehash_password(conn, user_id, stored_hash, new_hash)
        _audit(
            "password_rehashed",
            "password hash upgraded",
            user_id=user_id,
            parameters=self._passwords.parameters,
        )

    def close(self) -> None:
        self._passwords.close()

    async def refresh(self, refresh_token: str) -> TokenPair:
        rotation = await self._sessions.rotate(refresh_token)
        if rotation.outcome is RefreshOutcome.OK:
            assert rotation.user_id and rotation.session_id and rotation.refresh_token
            return self._issue(rotation.user_id, rotation.session_id, rotation.refresh_token)
        if rotation.outcome is RefreshOutcome.REUSED:
            _audit(
                "refresh_token_reused",
                "a rotated refresh token was presented again: session family revoked",
                user_id=rotation.user_id,
                session_id=rotation.session_id,
            )
            raise RefreshTokenReused()
        raise InvalidRefreshToken(
            "session_revoked" if rotation.outcome is not RefreshOutcome.UNKNOWN else None
        )

    async def logout(self, *, session: tuple[str, uuid.UUID] | None, refresh_token: str | None) -> bool:
        """Revokes the session of the access token and/or of the refresh token. False if neither is known."""
        targets: list[tuple[str, uuid.UUID]] = []
        if session is not None:
            targets.append(session)
        if refresh_token:
            found = await self._sessions.session_of_refresh_token(refresh_token)
            if found is not None:
                targets.append(found)
        for sid, user_id in targets:
            await self._sessions.revoke(sid, user_id)
            _audit("logout", "session ended", user_id=user_id, session_id=sid)
        return bool(targets)

    async def session_active(self, session_id: str, user_id: uuid.UUID) -> bool:
        return await self._sessions.is_active(session_id, user_id)

    # --- forgotten password -----------------------------------------------------------------------
    async def request_password_reset(self, email: str, *, client: str) -> None:
        """Mails a single-use link if the address is registered. The caller answers the same either way.

        Both cases do the same work up to the lookup (the token and its digest are made anyway), and the
        call lasts at least `password_reset_min_response_s`, so timing does not tell them apart.
        """
        started = time.monotonic()
        email = normalize_email(email)
        violations = check_email(email)
        if violations:
            raise InvalidInput(violations)
        token = secrets.token_urlsafe(32)
        token_digest = digest(token)  # computed whether or not the address exists
        expires_at = utc_now() + timedelta(seconds=self.settings.password_reset_ttl_s)
        allowed = await self._throttle.allow_password_reset(email)
        async with self._pool.connection() as conn, conn.transaction():
            row = await self._users.by_email(conn, email)
            if row is not None and allowed:
                await db.create_reset_token(conn, token_digest, row.user_id, expires_at)
                message = mail.password_reset_mail(
                    to=row.email,
                    full_name=row.full_name,
                    language=_language(row.language),
                    link=self._link("/reset-password", token),
                    ttl_minutes=self.settings.password_reset_ttl_s // 60,
                )
                await db.enqueue_mail(conn, message, row.user_id)
        _audit(
            "password_reset_requested",
            "password reset requested",
            email=email,
            client=client,
            user_id=row.user_id if row else None,
            mailed=row is not None and allowed,
        )
        await asyncio.sleep(
            max(0.0, self.settings.password_reset_min_response_s - (time.monotonic() - started))
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        token_digest = digest(token)
        async with self._pool.connection() as conn:
            state = await db.reset_token_state(conn, token_digest)
            _check_link("password_reset", state)
            assert state is not None
            user = await self._load(conn, state.user_id)
        domain.validate_new_password(user, new_password)
        new_hash = await self._passwords.hash(new_password)

        async def step(conn: Connection) -> User:
            locked = await db.reset_token_state(conn, token_digest, lock=True)
            _check_link("password_reset", locked)
            current = await self._load(conn, state.user_id)
            await self._users.save(
                conn, current.user_id, current.version, domain.change_password(current, "reset")
            )
            await db.set_password_hash(conn, current.user_id, new_hash)
            await db.close_reset_tokens(conn, current.user_id)
            await db.enqueue_mail(conn, self._password_notice(current, "reset"), current.user_id)
            await self._sessions.revoke_all(current.user_id)
            return current

        changed = await self._retrying(step)
        await self._throttle.record_success(changed.email)
        _audit(
            "password_reset", "password set with a reset link; all sessions revoked", user_id=changed.user_id
        )

    def _password_notice(self, user: User, via: str) -> mail.ComposedMail:
        return mail.password_changed_mail(
            to=user.email,
            full_name=user.full_name,
            language=user.language,
            changed_at=utc_now(),
            via="reset" if via == "reset" else "change",
            recovery_link=self._link("/reset-password"),
        )

    # --- profile ----------------------------------------------------------------------------------
    async def profile(self, user_id: uuid.UUID) -> UserRow:
        async with self._pool.connection() as conn:
            row = await self._users.by_id(conn, user_id)
        if row is None:
            raise UserNotFound()
        return row

    async def update_profile(
        self, user_id: uuid.UUID, *, full_name: str | None, language: Language | None
    ) -> UserRow:
        name = domain.validate_full_name(full_name) if full_name is not None else None

        async def step(conn: Connection) -> None:
            user = await self._load(conn, user_id)
            events = domain.change_profile(user, full_name=name, language=language)
            await self._users.save(conn, user_id, user.version, events)

        await self._retrying(step)
        return await self.profile(user_id)

    async def change_password(
        self, user_id: uuid.UUID, session_id: str, *, current: str, new: str, confirmation: str, client: str
    ) -> None:
        async with self._pool.connection() as conn:
            user = await self._load(conn, user_id)
        await self._verify_current_password(user, current, client)
        domain.validate_new_password(user, new, confirmation=confirmation)
        if new == current:
            raise PasswordUnchanged()
        new_hash = await self._passwords.hash(new)

        async def step(conn: Connection) -> list[str]:
            fresh = await self._load(conn, user_id)
            await self._users.save(conn, user_id, fresh.version, domain.change_password(fresh, "change"))
            await db.set_password_hash(conn, user_id, new_hash)
            await db.close_reset_tokens(conn, user_id)
            await db.enqueue_mail(conn, self._password_notice(fresh, "change"), user_id)
            return await self._sessions.revoke_all(user_id, keep=session_id)

        revoked = await self._retrying(step)
        _audit(
            "password_changed",
            "password changed; other sessions revoked",
            user_id=user_id,
            session_id=session_id,
            revoked_sessions=len(revoked),
        )

    # --- e-mail change ----------------------------------------------------------------------------
    async def request_email_change(
        self, user_id: uuid.UUID, *, new_email: str, current_password: str, client: str
    ) -> None:
        async with self._pool.connection() as conn:
            user = await self._load(conn, user_id)
        await self._verify_current_password(user, current_password, client)
        address = domain.validate_new_email(user, new_email)
        token = secrets.token_urlsafe(32)
        change_id = uuid.uuid4()
        requested_at = utc_now()
        expires_at = requested_at + timedelta(seconds=self.settings.email_change_ttl_s)

        async def step(conn: Connection) -> None:
            fresh = await self._load(conn, user_id)
            if await self._users.email_in_use(conn, address):
                raise EmailTaken("new_email")
            await db.create_email_change(
                conn,
                digest(token),
                change_id=change_id,
                user_id=user_id,
                old_email=fresh.email,
                new_email=address,
                expires_at=expires_at,
            )
            events = domain.request_email_change(fresh, address, change_id, expires_at)
            await self._users.save(conn, user_id, fresh.version, events)
            confirmation = mail.email_change_confirmation_mail(
                to=address,
                full_name=fresh.full_name,
                language=fresh.language,
                link=self._link("/confirm-email", token),
                ttl_hours=max(1, self.settings.email_change_ttl_s // 3600),
            )
            notice = mail.email_change_notice_mail(
                to=fresh.email,
                full_name=fresh.full_name,
                language=fresh.language,
                requested_at=requested_at,
                new_email_masked=mask_email(address),
                recovery_link=self._link("/reset-password"),
            )
            await db.enqueue_mail(conn, confirmation, user_id)
            await db.enqueue_mail(conn, notice, user_id)

        await self._retrying(step)
        _audit("email_change_requested", "e-mail change requested", user_id=user_id, change_id=change_id)

    async def confirm_email_change(self, user_id: uuid.UUID, token: str) -> UserRow:
        token_digest = digest(token)

        async def step(conn: Connection) -> uuid.UUID | None:
            state = await db.email_change_state(conn, token_digest, lock=True)
            if state is not None and state.user_id != user_id:
                state = None  # someone else's link: as if unknown
            _check_link("email_change", state)
            assert state is not None and state.new_email is not None and state.change_id is not None
            user = await self._load(conn, user_id)
            events = domain.confirm_email_change(user, state.change_id, state.new_email)
            try:
                await self._users.save(conn, user_id, user.version, events)
            except EmailAlreadyUsed:
                raise EmailTaken("token") from None
            await db.close_email_change(conn, token_digest, "confirmed")
            return state.change_id

        change_id = await self._retrying(step)
        _audit("email_changed", "e-mail change confirmed", user_id=user_id, change_id=change_id)
        return await self.profile(user_id)


def _check_link(kind: str, state: db.TokenState | None) -> None:
    if state is None:
        raise LinkInvalid(kind, "invalid")
    if state.used:
        raise LinkInvalid(kind, "used")
    if state.expired:
        raise LinkInvalid(kind, "expired")


def _language(value: str) -> Language:
    return cast(Language, value) if value in ("ru", "kk", "en") else "ru"
