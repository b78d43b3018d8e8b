"""The web portal: server-rendered pages for every section of the manual (domain/PORTAL.md).

Layout (manual, Fig. 1): the header (ФИО, selected account, its address), the left menu, the centre
section, the right info panel (contact centre, the account's district office, e-bill subscription,
site map). Each page gathers its parts concurrently; a service that is down leaves only its own part
with a notice. Every form carries the session's CSRF token; every POST checks it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup

from gateway.adapters.rate_limit import retry_minutes
from gateway.adapters.upstream import UpstreamProblem, UpstreamUnavailable
from gateway.application.backend import ACCOUNT_NO, PERIOD, SERVICE_CODE, AccountList
from gateway.domain.chart import Month, bar_chart_svg
from gateway.i18n import (
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    Language,
    catalogs,
    current_language,
    negotiate,
    parse_language,
)
from gateway.models import FIRST_DAY, LAST_DAY
from gateway.portal.context import CsrfRejected, PortalRedirect, Section, View, safe_next
from gateway.portal.receipt_view import NORM_LABELS, payment_qr, receipt_sides
from gateway.portal.render import SHORT_MONTHS, STATIC_DIR, build_environment
from gateway.problems import PROBLEM_TEXTS, STATUS_TEXTS, ApiProblem, service_name
from gateway.web import client_ip, parts

ALMATY = ZoneInfo("Asia/Almaty")
SERVICE_UNAVAILABLE = "service_unavailable"
# A password change refused for these: the session itself is gone (sign in again).
SESSION_ENDED = ("not_authenticated", "invalid_token", "session_revoked")
env = build_environment()
router = APIRouter(include_in_schema=False)


def _(message: str, **params: Any) -> str:
    """Translates a literal message id (extracted into the catalogs)."""
    return catalogs().gettext(message, **params)


def translate(message_id: str, **params: Any) -> str:
    """Translates a message id held in a variable (marked with N_ where it is written)."""
    return catalogs().gettext(message_id, **params)


def down(exc: UpstreamUnavailable, view: View) -> str:
    """«Сервис … временно недоступен»: the text of a form whose service didn't answer."""
    return translate(PROBLEM_TEXTS[SERVICE_UNAVAILABLE][1], service=service_name(exc.service, view.lang))


MENU: list[tuple[str, str, str]] = [
    ("accounts", N_("Доступные лицевые счета"), "/"),
    ("info", N_("Информация по лицевому счёту"), "/accounts/{no}"),
    ("services", N_("Информация по услугам"), "/accounts/{no}/services"),
    ("calculator", N_("Расчёт начислений по эл.энергии"), "/accounts/{no}/calculator"),
    ("payments", N_("Платежи"), "/accounts/{no}/payments"),
    ("receipts", N_("Квитанции"), "/accounts/{no}/receipts"),
    ("readings", N_("Передать показания"), "/accounts/{no}/readings"),
    ("consumption", N_("История потребления"), "/accounts/{no}/consumption"),
    ("requests", N_("Подать заявку"), "/accounts/{no}/requests"),
    ("password", N_("Изменить пароль"), "/profile/password"),
    ("email", N_("Изменение E-mail адреса"), "/profile/email"),
    ("settings", N_("Персональные настройки"), "/profile"),
]
REQUEST_CATEGORIES: list[tuple[str, str]] = [
    ("meter_replacement", N_("Замена счётчика")),
    ("recalculation", N_("Перерасчёт")),
    ("reading_dispute", N_("Спор по показаниям")),
    ("connection", N_("Подключение")),
    ("other", N_("Другое")),
]
REQUEST_STATUSES: dict[str, str] = {
    "submitted": N_("Принята"),
    "in_progress": N_("В работе"),
    "resolved": N_("Выполнена"),
    "rejected": N_("Отклонена"),
}
TARIFF_OPTIONS: dict[str, str] = {"flat": N_("единый тариф"), "tiered": N_("дифференцированный тариф")}
READING_SOURCES: dict[str, str] = {
    "customer": N_("потребитель"),
    "grid": N_("сетевая компания"),
    "grid_company": N_("сетевая компания"),
    "estimate": N_("расчётное"),
    "meter_replacement": N_("замена счётчика"),
}


def today() -> dt.date:
    return dt.datetime.now(ALMATY).date()


def this_period() -> str:
    return today().strftime("%Y-%m")


def months_back(period: str, months: int) -> str:
    year, month = (int(x) for x in period.split("-"))
    index = year * 12 + month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _period_or(value: str | None, default: str) -> str:
    return value if value and PERIOD.fullmatch(value) else default


def _date_or(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        return default


def _form_date(value: str) -> dt.date | None:
    """A date typed in a form (YYYY-MM-DD, between 1900 and 2199), or None."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def _decimal(value: str | None) -> str | None:
    """A user-typed amount ('1 234,5') as a two-decimal string, or None when it isn't a number."""
    if value is None:
        return None
    text = value.replace("\u00a0", "").replace(" ", "").replace(",", ".").strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or number.as_tuple().exponent < -2:  # type: ignore[operator]
        return None
    return f"{number:.2f}"


@dataclass(frozen=True, slots=True)
class Range:
    """A page's `?from=…&to=…` filter, as typed (checked by each page)."""

    from_: str | None
    to: str | None


def _range(from_: Annotated[str | None, Query(alias="from")] = None, to: str | None = None) -> Range:
    return Range(from_, to)


RangeQuery = Annotated[Range, Depends(_range)]


def _period_range(query: Range) -> dict[str, str]:
    """`from`/`to` months (YYYY-MM): by default the 12 months up to this one; swapped if reversed."""
    end = _period_or(query.to, this_period())
    start = _period_or(query.from_, months_back(end, 11))
    if start > end:
        start, end = end, start
    return {"from": start, "to": end}


def _reading_errors(values: dict[str, str], value_field: str) -> tuple[str | None, dict[str, str]]:
    """A reading typed in a form (its value under `value_field`, its date under `reading_date`): the
    value as a two-decimal string, and the fields at fault."""
    errors: dict[str, str] = {}
    value = _decimal(values[value_field])
    if value is None or Decimal(value) < 0:
        errors[value_field] = _("Введите показание счётчика, например 12345.6")
    if _form_date(values["reading_date"]) is None:
        errors["reading_date"] = _("Выберите дату снятия показаний")
    return value, errors


def _too_many_attempts(retry_after: int) -> str:
    return _("Слишком много попыток. Повторите через %(minutes)s мин.", minutes=retry_minutes(retry_after))


# --- rendering --------------------------------------------------------------------------------------------
async def render(
    view: View, template: str, *, title: str, active: str | None = None, status: int = 200, **context: Any
) -> Response:
    current_language.set(view.lang)
    html = env.get_template(template).render(
        lang=view.lang,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        csrf_token=view.session.csrf_token,
        user={"full_name": view.session.full_name, "email": view.session.email}
        if view.session.authenticated
        else None,
        title=title,
        active=active,
        menu=_menu(view, active),
        contact=view.parts.settings.contact_center,
        flashes=[_flash_text(f) for f in view.take_flashes()],
        here=_here(view.request),
        service_name=lambda s: service_name(s, view.lang),
        **view.layout,
        **context,
    )
    return await view.finish(HTMLResponse(html, status_code=status))


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _flash_text(flash: dict[str, str]) -> dict[str, str]:
    params = {k: v for k, v in flash.items() if k not in ("kind", "message")}
    return {"kind": flash["kind"], "text": translate(flash.get("text_id", ""), **params)}


def _menu(view: View, active: str | None) -> list[dict[str, Any]]:
    selected = view.layout.get("selected_no")
    items = []
    for key, label, pattern in MENU:
        needs_account = "{no}" in pattern
        href = pattern.format(no=selected) if selected else (None if needs_account else pattern)
        items.append({"key": key, "label": translate(label), "href": href, "active": key == active})
    return items


@dataclass(frozen=True, slots=True)
class Page:
    """A page's template, title (a message id) and menu item."""

    template: str
    title: str
    active: str | None = None

    async def render(self, view: View, *, status: int = 200, **context: Any) -> Response:
        return await render(
            view, self.template, title=translate(self.title), active=self.active, status=status, **context
        )


@dataclass
class Submitted:
    """What a form's call to a service came to: its answer, or the text to show (and the fields at fault)."""

    value: Any = None
    error: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    problem: UpstreamProblem | None = None  # the service's refusal, if it refused

    @property
    def ok(self) -> bool:
        return self.error is None and self.problem is None


async def submit(view: View, call: Awaitable[Any]) -> Submitted:
    try:
        return Submitted(value=await call)
    except UpstreamUnavailable as exc:
        return Submitted(error=down(exc, view))
    except UpstreamProblem as problem:
        error, errors = field_errors(problem, view)
        return Submitted(error=error, errors=errors, problem=problem)


async def pdf_download(view: View, content: bytes, name: str) -> Response:
    return await view.finish(
        Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    )


async def with_layout(
    view: View, account_no: str | None = None, listing: Section[AccountList] | None = None
) -> None:
    """The header and right panel: the selected account (the page's, else the last one, else the first
    of `listing`, fetched when not given)."""
    backend = view.parts.backend
    if account_no is not None:
        if not ACCOUNT_NO.fullmatch(account_no):
            raise ApiProblem(404, "account_not_found")
        if view.session.selected_account != account_no:
            view.session.selected_account = account_no
            view.dirty = True
    selected = account_no or view.session.selected_account
    if selected is None:
        listing = listing or await view.attempt(backend.account_list(view.caller))
        if listing.ok and listing.value is not None and listing.value.accounts:
            selected = str(listing.value.accounts[0]["account_no"])
            view.session.selected_account = selected
            view.dirty = True
    if selected is None:
        view.layout.update(selected_no=None, account=None, account_section=None)
        return
    try:
        section = await view.attempt(backend.account_info(view.caller, selected))
    except ApiProblem:
        if account_no is not None:
            raise
        # The remembered account was unlinked meanwhile: forget it.
        view.session.selected_account = None
        view.dirty = True
        view.layout.update(selected_no=None, account=None, account_section=None)
        return
    view.layout.update(selected_no=selected, account=section.value, account_section=section)


async def user_view(request: Request, account_no: str | None = None) -> View:
    view = await View.load(request)
    await view.require_user()
    await with_layout(view, account_no)
    return view


def problem_text(section: Section[Any]) -> str | None:
    if section.problem is not None:
        return str(section.problem.get("detail") or section.problem.get("title"))
    return None


def field_errors(problem: UpstreamProblem, view: View) -> tuple[str, dict[str, str]]:
    from gateway.problems import localize_upstream

    localized = localize_upstream(problem, view.lang)
    fields = {str(e["field"]): str(e["message"]) for e in localized.get("errors", [])}
    return str(localized["detail"]), fields


# --- anonymous pages ---------------------------------------------------------------------------------------
LOGIN = Page("login.html", N_("Вход в личный кабинет"))
REGISTER = Page("register.html", N_("Регистрация"))
FORGOT_PASSWORD = Page("forgot_password.html", N_("Восстановление пароля"))
RESET_PASSWORD = Page("reset_password.html", N_("Новый пароль"))


@router.get("/login")
async def login_page(request: Request) -> Response:
    view = await View.load(request)
    if view.session.authenticated:
        return await view.redirect("/")
    return await LOGIN.render(view, form={}, errors={})


@router.post("/login")
async def login_submit(request: Request) -> Response:
    view = await View.load(request)
    form = await view.form()
    p = view.parts
    email, password = form.get("email", "").strip(), form.get("password", "")
    ip = client_ip(request)
    error = None
    retry_after = await p.limiter.blocked(p.login_limit, ip)
    if retry_after is not None:
        error = _too_many_attempts(retry_after)
    elif not email or not password:
        error = _("Введите e-mail и пароль.")
    else:
        login = p.backend.identity(
            "POST", "/auth/login", view.context(), {"email": email, "password": password}
        )
        result = await submit(view, p.limiter.counting(p.login_limit, ip, login, status=401))
        if result.ok:
            await view.start_session(result.value)
            target = safe_next(view.session.after_login)
            view.session.after_login = None
            return await view.redirect(target)
        error = result.error
    return await LOGIN.render(view, form={"email": email}, errors={}, error=error, status=200)


@router.get("/register")
async def register_page(request: Request) -> Response:
    view = await View.load(request)
    return await REGISTER.render(view, form={}, errors={})


@router.post("/register")
async def register_submit(request: Request) -> Response:
    view = await View.load(request)
    form = await view.form()
    values = {k: form.get(k, "").strip() for k in ("full_name", "email")}
    password, confirm = form.get("password", ""), form.get("password_confirm", "")
    errors: dict[str, str] = {}
    error = None
    p = view.parts
    ip = client_ip(request)
    retry_after = await p.limiter.blocked(p.register_limit, ip)
    if retry_after is not None:
        error = _too_many_attempts(retry_after)
    elif password != confirm:
        errors["password_confirm"] = _("Пароли не совпадают")
    else:
        register = p.backend.identity(
            "POST", "/auth/register", view.context(), {**values, "password": password}
        )
        result = await submit(view, p.limiter.counting(p.register_limit, ip, register, status=409))
        if result.ok:
            try:
                tokens = await view.parts.backend.identity(
                    "POST", "/auth/login", view.context(), {"email": values["email"], "password": password}
                )
            except (UpstreamUnavailable, UpstreamProblem):
                view.flash("success", N_("Регистрация завершена. Войдите в личный кабинет."))
                return await view.redirect("/login")
            await view.start_session(tokens)
            view.flash("success", N_("Регистрация завершена. Добавьте лицевой счёт."))
            return await view.redirect("/")
        error, errors = result.error, result.errors
    return await REGISTER.render(view, form=values, errors=errors, error=error)


@router.get("/forgot-password")
async def forgot_page(request: Request) -> Response:
    view = await View.load(request)
    return await FORGOT_PASSWORD.render(view, form={}, sent=False)


@router.post("/forgot-password")
async def forgot_submit(request: Request) -> Response:
    view = await View.load(request)
    form = await view.form()
    email = form.get("email", "").strip()
    result = await submit(
        view, view.parts.backend.identity("POST", "/auth/password-reset", view.context(), {"email": email})
    )
    return await FORGOT_PASSWORD.render(view, form={"email": email}, sent=result.ok, error=result.error)


@router.get("/reset-password")
async def reset_page(request: Request, token: str = "") -> Response:
    view = await View.load(request)
    return await RESET_PASSWORD.render(view, token=token, errors={})


@router.post("/reset-password")
async def reset_submit(request: Request) -> Response:
    view = await View.load(request)
    form = await view.form()
    token, password, confirm = (
        form.get("token", ""),
        form.get("password", ""),
        form.get("password_confirm", ""),
    )
    errors: dict[str, str] = {}
    error = None
    if password != confirm:
        errors["password_confirm"] = _("Пароли не совпадают")
    else:
        result = await submit(
            view,
            view.parts.backend.identity(
                "POST",
                "/auth/password-reset/confirm",
                view.context(),
                {"token": token, "new_password": password},
            ),
        )
        if result.ok:
            view.flash("success", N_("Пароль изменён. Войдите с новым паролем."))
            return await view.redirect("/login")
        error = result.error
        errors = {("password" if k == "new_password" else k): v for k, v in result.errors.items()}
    return await RESET_PASSWORD.render(view, token=token, errors=errors, error=error)


@router.post("/language")
async def switch_language(request: Request) -> Response:
    view = await View.load(request)
    form = await view.form()
    lang = parse_language(form.get("lang"))
    if lang is not None:
        view.lang = lang
        current_language.set(lang)
        view.set_language_cookie = True
        if view.session.authenticated:
            try:
                await view.require_user()
                await view.parts.backend.identity("PATCH", "/me", view.caller.ctx, {"language": lang})
            except (UpstreamUnavailable, UpstreamProblem):
                pass  # the cookie remembers it on this device anyway
    return await view.redirect(safe_next(form.get("next")))


@router.get("/sitemap")
async def sitemap(request: Request) -> Response:
    view = await View.load(request)
    if view.session.authenticated:
        await view.require_user()
        await with_layout(view)
    return await render(view, "sitemap.html", title=_("Карта сайта"), active="sitemap")


# --- accounts ------------------------------------------------------------------------------------------------
ACCOUNTS = Page("accounts.html", N_("Доступные лицевые счета"), "accounts")
ACCOUNT_ADD = Page("account_add.html", N_("Добавление нового лицевого счёта"), "accounts")
ACCOUNT_DELETE = Page("account_delete.html", N_("Удаление лицевого счёта"), "accounts")
ACCOUNT_INFO = Page("account_info.html", N_("Информация по лицевому счёту"), "info")


@router.get("/")
async def start_page(request: Request) -> Response:
    """«Доступные лицевые счета»: the start page."""
    view = await View.load(request)
    if not view.session.authenticated:
        return await view.redirect("/login")
    await view.require_user()
    listing = await view.attempt(view.parts.backend.account_list(view.caller))
    await with_layout(view, listing=listing)
    return await ACCOUNTS.render(view, listing=listing)


@router.get("/accounts/add")
async def add_account_page(request: Request) -> Response:
    view = await user_view(request)
    return await ACCOUNT_ADD.render(view, form={}, errors={}, max_month=this_period())


@router.post("/accounts/add")
async def add_account_submit(request: Request) -> Response:
    view = await user_view(request)
    form = await view.form()
    p = view.parts
    values = {
        "account_no": form.get("account_no", "").strip(),
        "last_payment_month": form.get("last_payment_month", "").strip(),
        "last_payment_amount": form.get("last_payment_amount", "").strip(),
    }
    errors: dict[str, str] = {}
    if not ACCOUNT_NO.fullmatch(values["account_no"]):
        errors["account_no"] = _("Номер лицевого счёта — от 10 до 12 цифр")
    if not PERIOD.fullmatch(values["last_payment_month"]):
        errors["last_payment_month"] = _("Выберите месяц и год последней оплаты")
    amount = _decimal(values["last_payment_amount"])
    if amount is None or Decimal(amount) <= 0:
        errors["last_payment_amount"] = _("Введите сумму, например 4250.00")
    error = None
    if not errors:
        ip = client_ip(request)
        retry_after = await p.limiter.blocked(p.link_limit, ip)
        if retry_after is not None:
            error = _too_many_attempts(retry_after)
        else:
            link = p.backend.link_account(view.caller, {**values, "last_payment_amount": amount})
            result = await submit(view, p.limiter.counting(p.link_limit, ip, link, status=422))
            if result.ok:
                view.session.selected_account = values["account_no"]
                view.flash("success", N_("Успешно добавлено"))
                return await view.redirect("/")
            error, errors = result.error, result.errors
    return await ACCOUNT_ADD.render(view, form=values, errors=errors, error=error, max_month=this_period())


@router.get("/accounts/{account_no}/delete")
async def delete_account_page(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    return await ACCOUNT_DELETE.render(view, account_no=account_no)


@router.post("/accounts/{account_no}/delete")
async def delete_account_submit(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    form = await view.form()
    if form.get("answer") != "yes":
        return await view.redirect("/")
    try:
        await view.parts.backend.unlink_account(view.caller, account_no)
    except UpstreamUnavailable as exc:
        view.flash(
            "error", PROBLEM_TEXTS[SERVICE_UNAVAILABLE][1], service=service_name(exc.service, view.lang)
        )
        return await view.redirect("/")
    view.session.selected_account = None
    view.flash("success", N_("Лицевой счёт %(no)s удалён из списка"), no=account_no)
    return await view.redirect("/")


@router.get("/accounts/{account_no}")
async def account_page(request: Request, account_no: str) -> Response:
    """«Информация по лицевому счёту»."""
    view = await user_view(request, account_no)
    return await ACCOUNT_INFO.render(view, tariff_options=TARIFF_OPTIONS)


# --- services and the statement ---------------------------------------------------------------------------------
SERVICES = Page("services.html", N_("Информация по услугам"), "services")
STATEMENT = Page("statement.html", N_("Выписка по услуге"), "services")


@router.get("/accounts/{account_no}/services")
async def services_page(request: Request, account_no: str, query: RangeQuery) -> Response:
    """«Информация по услугам» with the period «с … по …»."""
    view = await user_view(request, account_no)
    params = _period_range(query)
    section = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "ledger", "GET", "/services", params=params)
    )
    return await SERVICES.render(view, section=section, period_from=params["from"], period_to=params["to"])


@router.get("/accounts/{account_no}/services/{service_code}/statement")
async def statement_page(request: Request, account_no: str, service_code: str, query: RangeQuery) -> Response:
    """The printable «Выписка по услуге»."""
    view = await user_view(request, account_no)
    if not SERVICE_CODE.fullmatch(service_code):
        raise ApiProblem(404, "not_found")
    params = _period_range(query)
    section = await view.attempt(
        view.parts.backend.account_call(
            view.caller, account_no, "ledger", "GET", f"/services/{service_code}/statement", params=params
        )
    )
    return await STATEMENT.render(
        view,
        section=section,
        service_code=service_code,
        period_from=params["from"],
        period_to=params["to"],
    )


@router.get("/accounts/{account_no}/services/{service_code}/statement.pdf")
async def statement_pdf(request: Request, account_no: str, service_code: str, query: RangeQuery) -> Response:
    view = await View.load(request)
    await view.require_user()
    if not SERVICE_CODE.fullmatch(service_code):
        raise ApiProblem(404, "not_found")
    params = _period_range(query)
    doc = await view.parts.backend.account_document(
        view.caller, account_no, "ledger", f"/services/{service_code}/statement", {**params, "format": "pdf"}
    )
    name = f"statement-{account_no}-{service_code}-{params['from']}-{params['to']}.pdf"
    return await pdf_download(view, doc.content, name)


# --- calculator -------------------------------------------------------------------------------------------------
CALCULATOR = Page("calculator.html", N_("Расчёт начислений по эл.энергии"), "calculator")


async def _calculator_page(
    view: View, account_no: str, *, form: dict[str, str], errors: dict[str, str], result: Section[Any] | None
) -> Response:
    comparison = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "calculator", "GET", "/tariff-comparison")
    )
    return await CALCULATOR.render(
        view, form=form, errors=errors, result=result, comparison=comparison, tariff_options=TARIFF_OPTIONS
    )


@router.get("/accounts/{account_no}/calculator")
async def calculator_page(request: Request, account_no: str) -> Response:
    """«Расчёт начислений по эл.энергии»."""
    view = await user_view(request, account_no)
    return await _calculator_page(
        view, account_no, form={"reading_date": today().isoformat()}, errors={}, result=None
    )


@router.post("/accounts/{account_no}/calculator")
async def calculator_submit(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    form = await view.form()
    values = {"reading_date": form.get("reading_date", ""), "reading_value": form.get("reading_value", "")}
    value, errors = _reading_errors(values, "reading_value")
    result: Section[Any] | None = None
    if not errors:
        result = await view.attempt(
            view.parts.backend.account_call(
                view.caller,
                account_no,
                "calculator",
                "POST",
                "/calculation",
                json={"reading_date": values["reading_date"], "reading_value": value},
            )
        )
        if result.problem is not None:
            errors = {str(e["field"]): str(e["message"]) for e in result.problem.get("errors", [])}
            errors = {
                ("reading_value" if k in ("value", "current.value") else k): v for k, v in errors.items()
            }
    return await _calculator_page(view, account_no, form=values, errors=errors, result=result)


# --- payments -----------------------------------------------------------------------------------------------------
PAYMENTS = Page("payments.html", N_("Платежи"), "payments")


@router.get("/accounts/{account_no}/payments")
async def payments_page(request: Request, account_no: str, query: RangeQuery) -> Response:
    """«Платежи» with the period filter."""
    view = await user_view(request, account_no)
    end = _date_or(query.to, today())
    start = _date_or(query.from_, end - dt.timedelta(days=365))
    if start > end:
        start, end = end, start
    section = await view.attempt(
        view.parts.backend.account_call(
            view.caller,
            account_no,
            "ledger",
            "GET",
            "/payments",
            params={"from": start.isoformat(), "to": end.isoformat()},
        )
    )
    return await PAYMENTS.render(view, section=section, date_from=start.isoformat(), date_to=end.isoformat())


# --- receipts -----------------------------------------------------------------------------------------------------
RECEIPTS = Page("receipts.html", N_("Квитанции"), "receipts")


@router.get("/accounts/{account_no}/receipts")
async def receipts_page(request: Request, account_no: str) -> Response:
    """«Квитанции»: the bills, with «Просмотр» of the front and the back side, and the PDF."""
    view = await user_view(request, account_no)
    section = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "receipts", "GET", "/receipts")
    )
    return await RECEIPTS.render(view, section=section)


@router.get("/accounts/{account_no}/receipts/{period}.pdf")
async def receipt_pdf(request: Request, account_no: str, period: str) -> Response:
    view = await View.load(request)
    await view.require_user()
    if not PERIOD.fullmatch(period):
        raise ApiProblem(404, "receipt_not_found")
    doc = await view.parts.backend.account_document(
        view.caller, account_no, "receipts", f"/receipts/{period}.pdf", {}
    )
    return await pdf_download(view, doc.content, f"receipt-{account_no}-{period}.pdf")


@router.get("/accounts/{account_no}/receipts/{period}")
async def receipt_page(request: Request, account_no: str, period: str, side: str = "front") -> Response:
    """«Квитанция» (front) or «Оборотная сторона счета» (back)."""
    view = await user_view(request, account_no)
    if not PERIOD.fullmatch(period):
        raise ApiProblem(404, "receipt_not_found")
    side = "back" if side == "back" else "front"
    section = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "receipts", "GET", f"/receipts/{period}")
    )
    sides = receipt_sides(section.value) if section.ok and isinstance(section.value, dict) else None
    qr = payment_qr(sides) if sides is not None and side == "front" else None
    title = _("Квитанция") if side == "front" else _("Оборотная сторона счета")
    return await render(
        view,
        "receipt.html",
        title=f"{title}: {period}",
        active="receipts",
        section=section,
        side=side,
        period=period,
        sides=sides,
        qr_svg=qr,
        tariff_labels=TARIFF_OPTIONS,
        norm_labels=NORM_LABELS,
    )


# --- readings, consumption -----------------------------------------------------------------------------------------
READINGS = Page("readings.html", N_("Передать показания"), "readings")
CONSUMPTION = Page("consumption.html", N_("История потребления"), "consumption")


async def _readings_page(
    view: View,
    account_no: str,
    *,
    form: dict[str, str],
    errors: dict[str, str],
    error: str | None,
    implausible: bool,
) -> Response:
    section = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "calculator", "GET", "/readings")
    )
    return await READINGS.render(
        view,
        section=section,
        form=form,
        errors=errors,
        error=error,
        implausible=implausible,
        sources=READING_SOURCES,
    )


@router.get("/accounts/{account_no}/readings")
async def readings_page(request: Request, account_no: str) -> Response:
    """«Передать показания» (beyond the manual)."""
    view = await user_view(request, account_no)
    return await _readings_page(
        view, account_no, form={"reading_date": today().isoformat()}, errors={}, error=None, implausible=False
    )


@router.post("/accounts/{account_no}/readings")
async def readings_submit(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    form = await view.form()
    values = {"reading_date": form.get("reading_date", ""), "value": form.get("value", "")}
    confirmed = form.get("confirm_implausible") == "on"
    value, errors = _reading_errors(values, "value")
    error = None
    implausible = False
    if not errors:
        result = await submit(
            view,
            view.parts.backend.account_call(
                view.caller,
                account_no,
                "calculator",
                "POST",
                "/readings",
                json={
                    "reading_date": values["reading_date"],
                    "value": value,
                    "confirm_implausible": confirmed,
                },
            ),
        )
        if result.ok:
            view.flash("success", N_("Показание принято"))
            return await view.redirect(f"/accounts/{account_no}/readings")
        if result.problem is not None and result.problem.status == 404:
            raise ApiProblem(404, "account_not_found")
        implausible = result.problem is not None and result.problem.code == "implausible_consumption"
        error, errors = result.error, result.errors
        errors.pop("confirm_implausible", None)
    return await _readings_page(
        view, account_no, form=values, errors=errors, error=error, implausible=implausible
    )


@router.get("/accounts/{account_no}/consumption")
async def consumption_page(request: Request, account_no: str) -> Response:
    """«История потребления»: kWh per month over 24 months, as an SVG bar chart and a table."""
    view = await user_view(request, account_no)
    section = await view.attempt(
        view.parts.backend.account_call(
            view.caller, account_no, "calculator", "GET", "/consumption", params={"months": "24"}
        )
    )
    chart = None
    rows: list[Month] = []
    if section.ok and isinstance(section.value, list):
        for item in section.value:
            raw = item.get("consumption_kwh", item.get("kwh"))
            try:
                kwh = Decimal(str(raw)) if raw is not None else Decimal(0)
            except InvalidOperation:
                kwh = Decimal(0)
            rows.append(Month(str(item.get("period")), kwh, bool(item.get("estimated"))))
        # Markup: every text in the SVG is escaped by bar_chart_svg itself.
        chart = Markup(  # noqa: S704
            bar_chart_svg(
                rows,
                title=_("Потребление электроэнергии по месяцам, кВт·ч"),
                description=_(
                    "Столбчатая диаграмма за последние 24 месяца; те же данные приведены в таблице ниже."
                ),
                unit=_("кВт·ч"),
                month_names=[translate(m) for m in SHORT_MONTHS],
                estimated_label=_("расчётное"),
            )
        )
    return await CONSUMPTION.render(view, section=section, chart=chart, rows=rows)


# --- requests -----------------------------------------------------------------------------------------------------
REQUESTS = Page("requests.html", N_("Подать заявку"), "requests")


async def _requests_page(
    view: View, account_no: str, *, form: dict[str, str], errors: dict[str, str], error: str | None
) -> Response:
    section = await view.attempt(
        view.parts.backend.account_call(view.caller, account_no, "accounts", "GET", "/requests")
    )
    return await REQUESTS.render(
        view,
        section=section,
        form=form,
        errors=errors,
        error=error,
        categories=[(code, translate(label)) for code, label in REQUEST_CATEGORIES],
        category_names={code: translate(label) for code, label in REQUEST_CATEGORIES},
        statuses={code: translate(label) for code, label in REQUEST_STATUSES.items()},
    )


@router.get("/accounts/{account_no}/requests")
async def requests_page(request: Request, account_no: str) -> Response:
    """«Подать заявку»."""
    view = await user_view(request, account_no)
    return await _requests_page(view, account_no, form={}, errors={}, error=None)


@router.post("/accounts/{account_no}/requests")
async def requests_submit(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    form = await view.form()
    values = {"category": form.get("category", ""), "text": form.get("text", "").strip()}
    errors: dict[str, str] = {}
    if values["category"] not in dict(REQUEST_CATEGORIES):
        errors["category"] = _("Выберите тему заявки")
    if not values["text"]:
        errors["text"] = _("Опишите вашу заявку")
    error = None
    if not errors:
        result = await submit(
            view,
            view.parts.backend.account_call(
                view.caller,
                account_no,
                "accounts",
                "POST",
                "/requests",
                json=values,
                headers={"Idempotency-Key": f"portal-{form.get('form_id', '')}"}
                if form.get("form_id")
                else None,
            ),
        )
        if result.ok:
            request_id = str(result.value.get("request_id", ""))[:8]
            view.flash("success", N_("Заявка № %(id)s принята"), id=request_id)
            return await view.redirect(f"/accounts/{account_no}/requests")
        error, errors = result.error, result.errors
    return await _requests_page(view, account_no, form=values, errors=errors, error=error)


# --- e-bill -------------------------------------------------------------------------------------------------------
EBILL = Page("ebill.html", N_("Подписаться на электронную квитанцию"), "ebill")


async def _ebill_page(
    view: View, account_no: str, *, form: dict[str, str], errors: dict[str, str], error: str | None
) -> Response:
    section = await view.attempt(_ebill(view, account_no))
    return await EBILL.render(view, section=section, form=form, errors=errors, error=error)


@router.get("/accounts/{account_no}/ebill")
async def ebill_page(request: Request, account_no: str) -> Response:
    """«Подписаться на электронную квитанцию»."""
    view = await user_view(request, account_no)
    return await _ebill_page(
        view, account_no, form={"email": view.session.email or ""}, errors={}, error=None
    )


async def _ebill(view: View, account_no: str) -> Any:
    """The caller's subscription for the account, or None."""
    try:
        found = await view.parts.backend.account_call(view.caller, account_no, "receipts", "GET", "/ebill")
    except UpstreamProblem as problem:
        if problem.status == 404 and problem.code != "account_not_found":
            return None  # not subscribed
        raise
    if isinstance(found, list):
        return next((s for s in found if isinstance(s, dict) and s.get("subscribed", True)), None)
    return found


@router.post("/accounts/{account_no}/ebill")
async def ebill_submit(request: Request, account_no: str) -> Response:
    view = await user_view(request, account_no)
    form = await view.form()
    backend = view.parts.backend
    email = form.get("email", "").strip()
    if form.get("action") == "unsubscribe":
        call = backend.account_call(view.caller, account_no, "receipts", "DELETE", "/ebill")
        done = N_("Подписка на электронную квитанцию отменена")
    else:
        call = backend.account_call(
            view.caller, account_no, "receipts", "PUT", "/ebill", json={"email": email}
        )
        done = N_("Вы подписаны на электронную квитанцию")
    result = await submit(view, call)
    if result.ok:
        view.flash("success", done)
        return await view.redirect(f"/accounts/{account_no}/ebill")
    if (
        result.problem is not None
        and result.problem.status == 404
        and result.problem.code == "account_not_found"
    ):
        raise ApiProblem(404, "account_not_found")
    return await _ebill_page(
        view, account_no, form={"email": email}, errors=result.errors, error=result.error
    )


# --- profile ------------------------------------------------------------------------------------------------------
PASSWORD = Page("password.html", N_("Изменить пароль"), "password")
EMAIL = Page("email.html", N_("Изменение E-mail адреса"), "email")
CONFIRM_EMAIL = Page("confirm_email.html", N_("Подтверждение адреса e-mail"), "email")
SETTINGS = Page("settings.html", N_("Персональные настройки"), "settings")


@router.get("/profile/password")
async def password_page(request: Request) -> Response:
    """«Изменить пароль»."""
    view = await user_view(request)
    return await PASSWORD.render(view, errors={})


@router.post("/profile/password")
async def password_submit(request: Request) -> Response:
    view = await user_view(request)
    form = await view.form()
    body = {k: form.get(k, "") for k in ("current_password", "new_password", "new_password_confirm")}
    errors: dict[str, str] = {}
    error = None
    if body["new_password"] != body["new_password_confirm"]:
        errors["new_password_confirm"] = _("Пароли не совпадают")
    else:
        result = await submit(
            view, view.parts.backend.identity("POST", "/me/password", view.caller.ctx, body)
        )
        if result.ok:
            view.flash("success", N_("Пароль изменён. Начиная со следующего входа используйте новый пароль."))
            return await view.redirect("/profile/password")
        problem = result.problem
        if problem is not None and problem.status == 401 and problem.code in SESSION_ENDED:
            await view.end_session()
            raise PortalRedirect(view, "/login")
        error, errors = result.error, result.errors
    return await PASSWORD.render(view, errors=errors, error=error)


@router.get("/profile/email")
async def email_page(request: Request) -> Response:
    """«Изменение E-mail адреса»."""
    view = await user_view(request)
    return await EMAIL.render(view, form={}, errors={})


@router.post("/profile/email")
async def email_submit(request: Request) -> Response:
    view = await user_view(request)
    form = await view.form()
    body = {
        "new_email": form.get("new_email", "").strip(),
        "current_password": form.get("current_password", ""),
    }
    result = await submit(view, view.parts.backend.identity("POST", "/me/email", view.caller.ctx, body))
    if result.ok:
        view.flash(
            "success",
            N_(
                "На адрес %(email)s отправлена ссылка для подтверждения. Адрес изменится после перехода по ней."
            ),
            email=body["new_email"],
        )
        return await view.redirect("/profile/email")
    return await EMAIL.render(
        view, form={"new_email": body["new_email"]}, errors=result.errors, error=result.error
    )


@router.get("/confirm-email")
async def confirm_email_page(request: Request, token: str = "") -> Response:
    """The link from the confirmation e-mail: one click on «Подтвердить» changes the address."""
    view = await user_view(request)
    return await CONFIRM_EMAIL.render(view, token=token)


@router.post("/confirm-email")
async def confirm_email_submit(request: Request) -> Response:
    view = await user_view(request)
    form = await view.form()
    token = form.get("token", "")
    result = await submit(
        view, view.parts.backend.identity("POST", "/me/email/confirm", view.caller.ctx, {"token": token})
    )
    if result.ok:
        view.session.email = result.value.get("email", view.session.email)
        view.dirty = True
        view.flash("success", N_("Адрес e-mail изменён на %(email)s"), email=str(view.session.email))
        return await view.redirect("/profile/email")
    return await CONFIRM_EMAIL.render(view, token=token, error=result.error)


@router.get("/profile")
async def settings_page(request: Request) -> Response:
    """«Персональные настройки»: the full name (ФИО) and the language."""
    view = await user_view(request)
    return await SETTINGS.render(
        view, form={"full_name": view.session.full_name or "", "language": view.lang}, errors={}
    )


@router.post("/profile")
async def settings_submit(request: Request) -> Response:
    view = await user_view(request)
    form = await view.form()
    full_name = form.get("full_name", "").strip()
    language = parse_language(form.get("language")) or view.lang
    result = await submit(
        view,
        view.parts.backend.identity(
            "PATCH", "/me", view.caller.ctx, {"full_name": full_name, "language": language}
        ),
    )
    if result.ok:
        view.session.full_name = result.value.get("full_name", full_name)
        view.dirty = True
        if language != view.lang:
            view.lang = language
            current_language.set(language)
            view.set_language_cookie = True
        view.flash("success", N_("Изменения сохранены"))
        return await view.redirect("/profile")
    return await SETTINGS.render(
        view, form={"full_name": full_name, "language": language}, errors=result.errors, error=result.error
    )


@router.post("/logout")
async def logout(request: Request) -> Response:
    """«Выход»: the session ends here and at identity."""
    view = await View.load(request)
    await view.form()
    session = view.session
    if session.authenticated:
        # The web session ends anyway; the refresh token would expire on its own.
        with contextlib.suppress(UpstreamUnavailable, UpstreamProblem):
            await view.parts.backend.identity(
                "POST",
                "/auth/logout",
                view.context(session.access_token),
                {"refresh_token": session.refresh_token},
            )
    await view.end_session()
    view.flash("info", N_("Вы вышли из личного кабинета"))
    return await view.redirect("/login")


# --- errors -------------------------------------------------------------------------------------------------------
async def error_page(request: Request, status: int, code: str, *, service: str | None = None) -> Response:
    cookie = parts(request).settings.language_cookie if hasattr(request.app.state, "parts") else "lk_lang"
    lang: Language = parse_language(request.cookies.get(cookie)) or negotiate(
        request.headers.get("accept-language")
    )
    current_language.set(lang)
    title, detail = PROBLEM_TEXTS.get(code) or STATUS_TEXTS.get(status) or STATUS_TEXTS[400]
    params = {"service": service_name(service, lang)} if service else {}
    html = env.get_template("error.html").render(
        lang=lang,
        title=translate(title),
        detail=translate(detail, **params),
        status=status,
        contact=None,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(PortalRedirect)
    async def redirect(request: Request, exc: PortalRedirect) -> Response:
        return await exc.view.finish(RedirectResponse(exc.location, status_code=303))

    @app.exception_handler(CsrfRejected)
    async def csrf(request: Request, exc: CsrfRejected) -> Response:
        view = exc.view
        current_language.set(view.lang)
        html = env.get_template("error.html").render(
            lang=view.lang,
            title=_("Форма устарела"),
            detail=_(
                "Форма устарела или отправлена с другого сайта, поэтому она не принята. "
                "Вернитесь назад, обновите страницу и отправьте форму ещё раз."
            ),
            status=403,
            contact=None,
        )
        return await view.finish(HTMLResponse(html, status_code=403))
