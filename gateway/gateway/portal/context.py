"""One portal request: its web session, language, CSRF check, tokens (refreshed transparently), and the
parts of the page that every section shares (header, menu, right panel).

A session is created on the first visit (the forms need its CSRF token even before the login) and
replaced by a new one at the login, so an id planted before the login is worth nothing after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import jwt
from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from gateway.adapters.sessions import WebSession
from gateway.adapters.upstream import CallContext, UpstreamProblem, UpstreamUnavailable
from gateway.application.backend import Caller
from gateway.i18n import N_, Language, current_language, negotiate, parse_language
from gateway.portal.security import same_origin, token_matches
from gateway.problems import ApiProblem, localize_upstream
from gateway.web import Parts, client_ip, parts

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_MARGIN_S = 30.0
PROFILE_MAX_AGE_S = 600.0


class PortalRedirect(Exception):
    """Ends the request with a redirect (the session is saved and its cookie set first)."""

    def __init__(self, view: View, location: str) -> None:
        super().__init__(location)
        self.view = view
        self.location = location


class CsrfRejected(Exception):
    def __init__(self, view: View) -> None:
        super().__init__("csrf")
        self.view = view


@dataclass
class Section(Generic[T]):
    """One part of a page: its data, or why it is missing (a service down, or a refusal)."""

    value: T | None = None
    unavailable: str | None = None  # the service that didn't answer
    problem: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.unavailable is None and self.problem is None


def safe_next(target: str | None) -> str:
    """A local path to go to after a form (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@dataclass
class View:
    request: Request
    parts: Parts
    session: WebSession
    lang: Language
    new_cookie: bool = False
    dirty: bool = False
    set_language_cookie: bool = False
    layout: dict[str, Any] = field(default_factory=dict)

    # --- construction ----------------------------------------------------------------------------------
    @classmethod
    async def load(cls, request: Request) -> View:
        p = parts(request)
        session = await p.sessions.load(request.cookies.get(p.settings.session_cookie))
        new_cookie = False
        if session is None:
            session = p.sessions.new()
            new_cookie = True
        lang = parse_language(request.cookies.get(p.settings.language_cookie)) or negotiate(
            request.headers.get("accept-language")
        )
        current_language.set(lang)
        dirty = new_cookie or p.sessions.needs_touch(session)
        return cls(request, p, session, lang, new_cookie=new_cookie, dirty=dirty)

    # --- identity of the caller ------------------------------------------------------------------------
    def context(self, token: str | None = None) -> CallContext:
        return CallContext(
            token=token,
            language=self.lang,
            client_ip=client_ip(self.request),
            user_agent=self.request.headers.get("user-agent"),
        )

    @property
    def caller(self) -> Caller:
        assert self.session.user_id is not None
        return Caller(self.session.user_id, self.context(self.session.access_token))

    async def require_user(self) -> None:
        """Logged in with a fresh access token, or a redirect to the login (and back afterwards)."""
        if not self.session.authenticated:
            if self.request.method == "GET":
                self.session.after_login = safe_next(
                    str(self.request.url.path)
                    + (f"?{self.request.url.query}" if self.request.url.query else "")
                )
                self.dirty = True
            raise PortalRedirect(self, "/login")
        if await self._revoked():
            await self._logged_out()
        if self.session.access_expires_at - time.time() < REFRESH_MARGIN_S:
            await self._refresh_tokens()
        if time.time() - self.session.profile_fetched_at > PROFILE_MAX_AGE_S:
            await self.reload_profile()

    async def _revoked(self) -> bool:
        """Identity ended this session (a logout elsewhere, a password change, a reused refresh token)."""
        sid = self.session.identity_sid
        if sid is None and self.session.access_token:
            with contextlib.suppress(jwt.PyJWTError):
                claims = jwt.decode(self.session.access_token, options={"verify_signature": False})
                sid = str(claims.get("sid") or "") or None
        return sid is not None and await self.parts.revoked.is_revoked(sid)

    async def _refresh_tokens(self) -> None:
        store = self.parts.sessions
        sid = self.session.session_id
        if not await store.refresh_lock(sid):
            updated = await store.wait_for_refresh(self.session)
            if updated is None or not updated.authenticated:
                await self._logged_out()
            else:
                self.session = updated
            return
        try:
            body = await self.parts.backend.identity(
                "POST", "/auth/refresh", self.context(), {"refresh_token": self.session.refresh_token}
            )
            self.store_tokens(body)
            await store.save(self.session)
        except UpstreamProblem:
            await self._logged_out()
        except UpstreamUnavailable:
            if self.session.access_expires_at <= time.time():
                raise
        finally:
            await store.release_refresh_lock(sid)

    async def _logged_out(self) -> None:
        await self.parts.sessions.delete(self.session.session_id)
        self.session = self.parts.sessions.new()
        self.new_cookie = self.dirty = True
        self.flash("info", N_("Сеанс завершён. Войдите снова."))
        raise PortalRedirect(self, "/login")

    def store_tokens(self, body: dict[str, Any]) -> None:
        self.session.access_token = str(body["access_token"])
        self.session.refresh_token = str(body["refresh_token"])
        self.session.access_expires_at = time.time() + float(body.get("expires_in", 300))
        self.dirty = True

    async def reload_profile(self) -> None:
        try:
            profile = await self.parts.backend.identity("GET", "/me", self.caller.ctx)
        except UpstreamUnavailable:
            return
        except UpstreamProblem as problem:
            if problem.status == 401:
                await self._logged_out()
            return
        self.session.full_name = profile.get("full_name")
        self.session.email = profile.get("email")
        self.session.profile_fetched_at = time.time()
        self.dirty = True

    async def start_session(self, tokens: dict[str, Any]) -> None:
        """After a login: a brand-new session id (the anonymous one is dropped), with the tokens."""
        await self.parts.sessions.delete(self.session.session_id)
        after = self.session.after_login
        self.session = self.parts.sessions.new()
        self.session.after_login = after
        self.new_cookie = True
        self.store_tokens(tokens)
        user = await self.parts.verifier.verify(str(tokens["access_token"]))
        self.session.user_id = str(user.user_id)
        self.session.identity_sid = user.session_id
        try:
            profile = await self.parts.backend.identity("GET", "/me", self.caller.ctx)
        except (UpstreamUnavailable, UpstreamProblem):
            return
        self.session.full_name = profile.get("full_name")
        self.session.email = profile.get("email")
        self.session.profile_fetched_at = time.time()
        # The language: the one chosen on this device (cookie) wins and is remembered in the profile;
        # without one, the profile's.
        language = parse_language(profile.get("language"))
        chosen = parse_language(self.request.cookies.get(self.parts.settings.language_cookie))
        if chosen is not None:
            if language != chosen:
                with contextlib.suppress(UpstreamUnavailable, UpstreamProblem):
                    await self.parts.backend.identity("PATCH", "/me", self.caller.ctx, {"language": chosen})
        elif language is not None:
            self.lang = language
            current_language.set(language)
            self.set_language_cookie = True

    async def end_session(self) -> None:
        await self.parts.sessions.delete(self.session.session_id)
        self.session = self.parts.sessions.new()
        self.new_cookie = self.dirty = True

    # --- forms -----------------------------------------------------------------------------------------
    async def form(self) -> dict[str, str]:
        """The posted form, after the CSRF checks (403 page otherwise)."""
        data = await self.request.form()
        # NUL is never part of a valid field (and PostgreSQL refuses it in text).
        values = {k: v.replace("\x00", "") for k, v in data.items() if isinstance(v, str)}
        if self.new_cookie or not token_matches(self.session.csrf_token, values.get("csrf_token")):
            raise CsrfRejected(self)
        if not same_origin(self.request, self.parts.settings.public_base_url):
            raise CsrfRejected(self)
        return values

    # --- messages --------------------------------------------------------------------------------------
    def flash(self, kind: str, message: str, **params: str) -> None:
        """A message for the next page; `message` is a Russian message id, translated when shown."""
        self.session.flash.append({"kind": kind, "text_id": message, **params})
        self.dirty = True

    def take_flashes(self) -> list[dict[str, str]]:
        flashes = self.session.flash
        if flashes:
            self.session.flash = []
            self.dirty = True
        return flashes

    # --- sections ----------------------------------------------------------------------------------------
    async def attempt(self, call: Awaitable[T]) -> Section[T]:
        """A section's data, or its degradation. An account that isn't the caller's still ends in 404."""
        try:
            return Section(value=await call)
        except UpstreamUnavailable as exc:
            return Section(unavailable=exc.service)
        except UpstreamProblem as problem:
            if problem.status == 404 and problem.code in ("account_not_found", "not_found"):
                raise ApiProblem(404, "account_not_found") from None
            if problem.status == 401:
                await self._logged_out()
            return Section(problem=localize_upstream(problem, self.lang))

    async def gather(self, *calls: Awaitable[Any]) -> list[Section[Any]]:
        return list(await asyncio.gather(*(self.attempt(c) for c in calls)))

    # --- the response -----------------------------------------------------------------------------------
    async def finish(self, response: Response) -> Response:
        settings = self.parts.settings
        if self.dirty:
            await self.parts.sessions.save(self.session)
        if self.new_cookie:
            response.set_cookie(
                settings.session_cookie,
                self.session.session_id,
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
                path="/",
            )
        if self.set_language_cookie:
            response.set_cookie(
                settings.language_cookie,
                self.lang,
                max_age=365 * 24 * 3600,
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
                path="/",
            )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Language"] = self.lang
        return response

    async def redirect(self, location: str) -> Response:
        return await self.finish(RedirectResponse(location, status_code=303))
