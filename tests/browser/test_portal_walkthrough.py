"""A customer walks every section of the manual in a real browser (Chromium, headless), on the full stack.

Every step asserts what the user sees. The fields are found by their labels and the buttons by their
names, so a form that isn't properly labelled fails the walk. Screenshots: artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import re
import uuid
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, expect
from pypdf import PdfReader

from tests.support.stack import REPO

from .conftest import Household2, Shots, new_page, serve_gateway

PASSWORD = "Надёжный-пароль-2025"
NEW_PASSWORD = "Ещё-более-надёжный-2026"
MONTHS_RU = ["Январь", "Февраль", "Март", "Апрель", "Май", "Июнь", "Июль", "Август", "Сентябрь", "Октябрь", "Ноябрь", "Декабрь"]  # fmt: skip


def month_ru(period: str) -> str:
    year, month = period.split("-")
    return f"{MONTHS_RU[int(month) - 1]} {year}"


def _smtp_sink() -> Any:
    spec = importlib.util.spec_from_file_location("smtp_sink", REPO / "deploy" / "local" / "smtp_sink.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def mail_link(mail_dir: Path, to: str, path: str, portal_url: str) -> str:
    """The link to `path` in the newest mail to `to`, pointed at the portal under test."""
    sink = _smtp_sink()

    def addressed(message: EmailMessage) -> bool:
        return to.lower() in str(message.get("To", "")).lower() and path in _body(message)

    message = await asyncio.to_thread(sink.wait_for_message, mail_dir, addressed, 60.0)
    match = re.search(
        r"https?://[^\s\"'<>]+" + re.escape(path) + r"\?token=[A-Za-z0-9_\-%.]+", _body(message)
    )
    assert match, _body(message)
    link = urlsplit(match.group(0))
    return f"{portal_url}{link.path}?{link.query}"


def _body(message: EmailMessage) -> str:
    parts = [message] if not message.is_multipart() else list(message.walk())
    texts = []
    for part in parts:
        if part.get_content_maintype() == "text":
            texts.append(str(part.get_content()))
    return "\n".join(texts)


async def heading(page: Page, text: str) -> None:
    await expect(page.get_by_role("heading", level=1)).to_contain_text(text)


async def menu(page: Page, label: str) -> None:
    await page.get_by_role("navigation").get_by_role("link", name=label, exact=True).click()


async def download_pdf(page: Page, link_name: str) -> bytes:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=link_name).first.click()
    download = await info.value
    path = await download.path()
    data = await asyncio.to_thread(Path(str(path)).read_bytes)
    assert data.startswith(b"%PDF"), data[:20]
    return data


async def test_a_customer_walks_every_section_of_the_manual(
    browser: Browser, portal_url: str, customer_data: Household2, mail_dir: Path
) -> None:
    shots = Shots("walk")
    data = customer_data
    no = data.account_no
    email = f"dinara-{uuid.uuid4().hex[:10]}@example.kz"
    async with new_page(browser, shots) as (_context, page):
        # --- registration, «Выход», login -------------------------------------------------------------
        await page.goto(f"{portal_url}/")
        await heading(page, "Вход в личный кабинет")
        await shots.take(page, "login")
        await page.get_by_role("link", name="Регистрация").click()
        await heading(page, "Регистрация")
        await page.get_by_label("ФИО").fill("Ахметова Динара Сериковна")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Пароль", exact=True).fill(PASSWORD)
        await page.get_by_label("Подтвердите пароль").fill(PASSWORD)
        await shots.take(page, "register")
        await page.get_by_role("button", name="Зарегистрироваться").click()
        await heading(page, "Доступные лицевые счета")
        await expect(page.get_by_role("status")).to_contain_text("Регистрация завершена")
        await expect(page.get_by_test_id("no-accounts")).to_be_visible()
        await page.get_by_role("button", name="Выход").click()
        await expect(page.get_by_role("status")).to_contain_text("Вы вышли из личного кабинета")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Войти").click()
        await heading(page, "Доступные лицевые счета")
        await expect(page.get_by_test_id("header-user")).to_have_text("Ахметова Динара Сериковна")
        await shots.take(page, "start-empty")

        # --- «Добавить новый лицевой счёт»: a wrong proof, then the right one ---------------------------
        await page.get_by_role("link", name="Добавить новый лицевой счёт").click()
        await heading(page, "Добавление нового лицевого счёта")
        await page.get_by_label("№ лицевого счёта").fill(no)
        await page.get_by_label("Месяц и год последней оплаты").fill(data.last_payment_month)
        await page.get_by_label("Сумма последней оплаты").fill("4499.00")
        await page.get_by_role("button", name="Добавить").click()
        await expect(page.get_by_test_id("form-error")).to_have_text(
            "Проверьте номер лицевого счёта, месяц и сумму последнего платежа."
        )
        await shots.take(page, "link-wrong-proof")
        await page.get_by_label("Сумма последней оплаты").fill(data.last_payment_amount)
        await page.get_by_role("button", name="Добавить").click()
        await heading(page, "Доступные лицевые счета")
        await expect(page.get_by_role("status")).to_have_text("Успешно добавлено")
        table = page.get_by_test_id("accounts-table")
        await expect(table).to_contain_text(no)
        await expect(table).to_contain_text(data.household.address)
        await shots.take(page, "link-added")

        # --- «Информация по лицевому счёту» (click the account in the list) --------------------------
        await table.get_by_role("link", name=no, exact=True).click()
        await heading(page, "Информация по лицевому счёту")
        info = page.get_by_test_id("account-info")
        await expect(info).to_contain_text(data.household.payer_name)
        await expect(info).to_contain_text(data.household.address)
        await expect(info).to_contain_text("Количество постоянно проживающих")
        await expect(info).to_contain_text("замена не производилась")
        await expect(page.get_by_test_id("header-account")).to_have_text(no)
        await expect(page.get_by_test_id("header-address")).to_have_text(data.household.address)
        await expect(page.get_by_test_id("district-office")).to_contain_text(data.office_name)
        await expect(page.get_by_role("complementary")).to_contain_text("Контактные данные Контакт-центра")
        await shots.take(page, "account-info")

        # --- «Информация по услугам» with «с … по …», then the printable «Выписка по услуге» ------------
        await menu(page, "Информация по услугам")
        await heading(page, "Информация по услугам")
        p1, p2, p3 = data.periods
        await page.get_by_label("с", exact=True).fill(p1)
        await page.get_by_label("по", exact=True).fill(p2)
        await page.get_by_role("button", name="Показать").click()
        service = page.get_by_test_id("service-electricity")
        await expect(service).to_contain_text("Электроэнергия")
        await expect(service).to_contain_text("Поставщик")
        await expect(service).to_contain_text(month_ru(p1))
        await expect(service).to_contain_text(month_ru(p2))
        await expect(service).not_to_contain_text(month_ru(p3))
        await expect(service.get_by_role("columnheader", name="Начальное сальдо")).to_be_visible()
        await shots.take(page, "services")
        await page.get_by_role("link", name="Печать (Выписка по услуге)").click()
        await heading(page, "Выписка по услуге")
        statement = page.get_by_test_id("statement")
        await expect(statement).to_contain_text("Электроэнергия")
        await expect(statement.get_by_role("columnheader", name="Тариф")).to_be_visible()
        await expect(statement).to_contain_text(month_ru(p2))
        await expect(page.get_by_role("button", name="Печать")).to_be_visible()
        await shots.take(page, "statement")
        pdf = await download_pdf(page, "Скачать PDF")
        assert len(PdfReader(io.BytesIO(pdf)).pages) >= 1

        # --- «Платежи» with the period filter ---------------------------------------------------------
        await menu(page, "Платежи")
        await heading(page, "Платежи")
        payments = page.get_by_test_id("payments-table")
        await expect(payments).to_contain_text("3\u00a0000.00")
        await expect(payments).to_contain_text("4\u00a0500.00")
        await expect(payments).to_contain_text("Kaspi Bank")
        await shots.take(page, "payments")
        await page.get_by_label("с", exact=True).fill(f"{p3}-01")
        await page.get_by_role("button", name="Показать").click()
        await expect(payments).to_contain_text("4\u00a0500.00")
        await expect(payments).not_to_contain_text("Halyk Bank")
        await shots.take(page, "payments-filtered")

        # --- «Расчёт начислений по эл.энергии» ----------------------------------------------------------
        await menu(page, "Расчёт начислений по эл.энергии")
        await heading(page, "Расчёт начислений по эл.энергии")
        await page.get_by_label("Дата снятия последних показаний").fill(date.today().isoformat())
        await page.get_by_label("Последние показания, кВт·ч").fill("1600")
        await page.get_by_role("button", name="Рассчитать").click()
        result = page.get_by_test_id("calculation")
        await expect(result).to_contain_text("Расчёт начисления по счётчику")
        await expect(page.get_by_test_id("consumption")).to_have_text("180.00")
        lines = page.get_by_test_id("calculation-lines")
        await expect(lines.locator("tbody tr").first).to_be_visible()
        await expect(lines).to_contain_text("Итого к оплате")
        assert re.fullmatch(
            r"[\d\u00a0]+\.\d{2}", (await page.get_by_test_id("calculation-total").inner_text()).strip()
        )
        await expect(page.get_by_test_id("tariff-comparison")).to_contain_text("дифференцированный тариф")
        await shots.take(page, "calculator")

        # --- «Квитанции»: «Просмотр» of the bill and its back side, and the PDF -------------------------
        await menu(page, "Квитанции")
        await heading(page, "Квитанции")
        bills = page.get_by_test_id("receipts-table")
        row = bills.get_by_role("row").filter(has_text=month_ru(p2))
        await expect(row).to_be_visible()
        await shots.take(page, "receipts")
        await row.get_by_role("link", name=re.compile("^Просмотр квитанции")).click()
        await heading(page, f"Квитанция: {month_ru(p2)}")
        front = page.get_by_test_id("receipt-front")
        await expect(front).to_contain_text(f"Счёт-квитанция за {month_ru(p2)}")
        await expect(front).to_contain_text(data.household.payer_name)
        await expect(front).to_contain_text("Сумма к оплате")
        await expect(front.get_by_role("img", name=re.compile("QR-код"))).to_be_visible()
        await shots.take(page, "receipt-front")
        await page.get_by_role("link", name="Оборотная сторона счета").first.click()
        await heading(page, f"Оборотная сторона счета: {month_ru(p2)}")
        back = page.get_by_test_id("receipt-back")
        await expect(back).to_contain_text("Тарифы на электроэнергию")
        await expect(back).to_contain_text("Задолженность по услугам")
        await expect(back).to_contain_text(data.office_name)
        await shots.take(page, "receipt-back")
        pdf = await download_pdf(page, "Скачать PDF")
        assert len(PdfReader(io.BytesIO(pdf)).pages) == 2

        # --- «Передать показания»: an implausible reading, confirmed -----------------------------------
        await menu(page, "Передать показания")
        await heading(page, "Передать показания")
        await page.get_by_label("Дата показания").fill(date.today().isoformat())
        await page.get_by_label("Показание счётчика, кВт·ч").fill("9420")
        await page.get_by_role("button", name="Передать").click()
        await expect(page.get_by_test_id("implausible-notice")).to_contain_text(
            "Показание выглядит неправдоподобно"
        )
        await shots.take(page, "reading-implausible")
        await page.get_by_label("Я проверил(а) показание, оно верное").check()
        await page.get_by_role("button", name="Передать").click()
        await expect(page.get_by_role("status")).to_have_text("Показание принято")
        await expect(page.get_by_test_id("readings-table")).to_contain_text("9\u00a0420.00")
        await shots.take(page, "reading-accepted")

        # --- «История потребления» (beyond the manual) ------------------------------------------------
        await menu(page, "История потребления")
        await heading(page, "История потребления")
        chart = page.get_by_test_id("consumption-chart")
        await expect(
            chart.get_by_role("img", name="Потребление электроэнергии по месяцам, кВт·ч")
        ).to_be_visible()
        assert await chart.locator("rect").count() == 24
        await shots.take(page, "consumption")

        # --- «Подать заявку» -------------------------------------------------------------------------
        await menu(page, "Подать заявку")
        await heading(page, "Подать заявку")
        await page.get_by_label("Тема заявки").select_option(label="Перерасчёт")
        await page.get_by_label("Текст заявки").fill("Прошу проверить начисление за прошлый месяц.")
        await page.get_by_role("button", name="Отправить").click()
        await expect(page.get_by_role("status")).to_contain_text("принята")
        requests_table = page.get_by_test_id("requests-table")
        await expect(requests_table).to_contain_text("Прошу проверить начисление за прошлый месяц.")
        await expect(requests_table).to_contain_text("Перерасчёт")
        await shots.take(page, "request")

        # --- «Подписаться на электронную квитанцию» (right panel) --------------------------------------
        await (
            page.get_by_role("complementary")
            .get_by_role("link", name="Подписаться на электронную квитанцию")
            .click()
        )
        await heading(page, "Подписаться на электронную квитанцию")
        await page.get_by_label("E-mail для квитанций").fill(email)
        await page.get_by_role("button", name="Подписаться").click()
        await expect(page.get_by_role("status")).to_have_text("Вы подписаны на электронную квитанцию")
        await expect(page.get_by_test_id("ebill-status")).to_contain_text(email)
        await shots.take(page, "ebill")

        # --- «Персональные настройки»: the name --------------------------------------------------------
        await menu(page, "Персональные настройки")
        await heading(page, "Персональные настройки")
        await page.get_by_label("ФИО").fill("Ахметова-Сейтова Динара Сериковна")
        await page.get_by_role("button", name="Сохранить").click()
        await expect(page.get_by_role("status")).to_have_text("Изменения сохранены")
        await expect(page.get_by_test_id("header-user")).to_have_text("Ахметова-Сейтова Динара Сериковна")
        await shots.take(page, "settings")

        # --- «Изменение E-mail адреса»: confirmed by the link mailed to the new address ----------------
        new_email = f"dinara-new-{uuid.uuid4().hex[:10]}@example.kz"
        await menu(page, "Изменение E-mail адреса")
        await heading(page, "Изменение E-mail адреса")
        await page.get_by_label("Новый E-mail адрес").fill(new_email)
        await page.get_by_label("Текущий пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Сохранить").click()
        await expect(page.get_by_role("status")).to_contain_text(f"На адрес {new_email} отправлена ссылка")
        await expect(page.get_by_test_id("current-email")).to_have_text(email)
        await shots.take(page, "email-requested")
        await page.goto(await mail_link(mail_dir, new_email, "/confirm-email", portal_url))
        await heading(page, "Подтверждение адреса e-mail")
        await shots.take(page, "email-confirm")
        await page.get_by_role("button", name="Подтвердить").click()
        await expect(page.get_by_role("status")).to_have_text(f"Адрес e-mail изменён на {new_email}")
        await expect(page.get_by_test_id("current-email")).to_have_text(new_email)
        await shots.take(page, "email-changed")

        # --- «Изменить пароль» --------------------------------------------------------------------------
        await menu(page, "Изменить пароль")
        await heading(page, "Изменить пароль")
        await page.get_by_label("Текущий пароль").fill(PASSWORD)
        await page.get_by_label("Новый пароль", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("Подтвердите новый пароль").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Изменить").click()
        await expect(page.get_by_role("status")).to_contain_text("Пароль изменён")
        await shots.take(page, "password-changed")

        # --- «Выход», and the next login takes the new address and password ----------------------------
        await page.get_by_role("button", name="Выход").click()
        await heading(page, "Вход в личный кабинет")
        await page.get_by_label("E-mail").fill(new_email)
        await page.get_by_label("Пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Войти").click()
        await expect(page.get_by_test_id("form-error")).to_have_text("Неверный e-mail или пароль")
        await page.get_by_label("Пароль").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Войти").click()
        await heading(page, "Доступные лицевые счета")
        await shots.take(page, "login-new-password")

        # --- delete the account: «нет» keeps it, «да» removes it ----------------------------------------
        await page.get_by_role("link", name=f"Удалить лицевой счёт {no}").click()
        await heading(page, "Удаление лицевого счёта")
        await expect(page.get_by_role("alertdialog")).to_contain_text(f"Удалить лицевой счёт {no}")
        await shots.take(page, "delete-confirm")
        await page.get_by_role("link", name="нет", exact=True).click()
        await expect(page.get_by_test_id("accounts-table")).to_contain_text(no)
        await page.get_by_role("link", name=f"Удалить лицевой счёт {no}").click()
        await page.get_by_role("button", name="да", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text(f"Лицевой счёт {no} удалён из списка")
        await expect(page.get_by_test_id("no-accounts")).to_be_visible()
        await shots.take(page, "deleted")

    csp_errors = [e for e in shots.errors if "Content Security Policy" in e or "Refused" in e]
    assert not csp_errors, csp_errors


async def test_languages_phone_width_and_forgotten_password(
    browser: Browser, portal_url: str, customer_data: Household2, mail_dir: Path
) -> None:
    shots = Shots("extra")
    email = f"aigerim-{uuid.uuid4().hex[:10]}@example.kz"
    async with new_page(browser, shots, viewport={"width": 360, "height": 740}) as (_context, page):
        await page.goto(f"{portal_url}/register")
        await page.get_by_label("ФИО").fill("Нұрланқызы Әйгерім Серікқызы")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Пароль", exact=True).fill(PASSWORD)
        await page.get_by_label("Подтвердите пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Зарегистрироваться").click()
        await heading(page, "Доступные лицевые счета")
        await shots.take(page, "phone-start")
        width = await page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways at 360 px ({width} px)"

        # The language switch is on every page and remembered.
        await page.get_by_role("button", name="Қазақша").click()
        await heading(page, "Қолжетімді дербес шоттар")
        await expect(page.locator("html")).to_have_attribute("lang", "kk")
        await shots.take(page, "phone-kazakh")
        await menu(page, "Жеке баптаулар")
        await heading(page, "Жеке баптаулар")
        await page.get_by_role("button", name="English").click()
        await heading(page, "Personal settings")
        await page.goto(f"{portal_url}/")
        await heading(page, "Available personal accounts")
        await shots.take(page, "phone-english")
        await page.get_by_role("button", name="Русский").click()
        await heading(page, "Доступные лицевые счета")

        # Keyboard: the first Tab reaches «skip to content».
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.textContent")
        assert "Перейти к основному содержанию" in focused
        # Every visible form field has a label.
        unlabelled = await page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                 .map(e => e.name)"""
        )
        assert unlabelled == []
        await page.get_by_role("button", name="Выход").click()

        # «Забыли пароль?»: the link by mail, a new password, and the login with it.
        await page.get_by_role("link", name="Забыли пароль?").click()
        await heading(page, "Восстановление пароля")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_role("button", name="Отправить ссылку").click()
        await expect(page.get_by_role("status")).to_contain_text("Если этот адрес зарегистрирован")
        await shots.take(page, "forgot-password")
        await page.goto(await mail_link(mail_dir, email, "/reset-password", portal_url))
        await heading(page, "Новый пароль")
        await page.get_by_label("Новый пароль", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("Подтвердите новый пароль").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Сохранить").click()
        await expect(page.get_by_role("status")).to_contain_text("Пароль изменён")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Пароль").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Войти").click()
        await heading(page, "Доступные лицевые счета")
        await shots.take(page, "reset-login")


async def test_a_service_down_leaves_the_rest_of_the_page_working(
    browser: Browser, portal_url: str, customer_data: Household2
) -> None:
    """The same customer's pages from a gateway whose ledger is unreachable (connection refused)."""
    shots = Shots("degraded")
    email = f"aliya-{uuid.uuid4().hex[:10]}@example.kz"
    no = customer_data.account_no
    async with (
        serve_gateway(ledger_url="http://127.0.0.1:9", upstream_timeout_s=1.0) as degraded,
        new_page(browser, shots) as (_context, page),
    ):
        await page.goto(f"{degraded}/register")
        await page.get_by_label("ФИО").fill("Касымова Алия Болатовна")
        await page.get_by_label("E-mail").fill(email)
        await page.get_by_label("Пароль", exact=True).fill(PASSWORD)
        await page.get_by_label("Подтвердите пароль").fill(PASSWORD)
        await page.get_by_role("button", name="Зарегистрироваться").click()
        await page.get_by_role("link", name="Добавить новый лицевой счёт").click()
        await page.get_by_label("№ лицевого счёта").fill(no)
        await page.get_by_label("Месяц и год последней оплаты").fill(customer_data.last_payment_month)
        await page.get_by_label("Сумма последней оплаты").fill(customer_data.last_payment_amount)
        await page.get_by_role("button", name="Добавить").click()
        await expect(page.get_by_text("Успешно добавлено")).to_be_visible()
        await expect(page.get_by_test_id("degraded")).to_contain_text("Баланс временно недоступен")
        await expect(page.get_by_test_id("accounts-table")).to_contain_text(no)
        await shots.take(page, "start")

        await page.goto(f"{degraded}/accounts/{no}/payments")
        await heading(page, "Платежи")
        await expect(page.get_by_test_id("degraded")).to_contain_text("Раздел временно недоступен")
        await expect(page.get_by_test_id("degraded")).to_contain_text("Начисления и платежи")
        await expect(page.get_by_test_id("header-address")).to_have_text(customer_data.household.address)
        await expect(page.get_by_test_id("district-office")).to_contain_text(customer_data.office_name)
        await expect(page.get_by_role("navigation")).to_contain_text("Квитанции")
        await shots.take(page, "payments")

        await menu(page, "Квитанции")  # receipts is up: the section is whole
        await expect(page.get_by_test_id("receipts-table")).to_contain_text(
            month_ru(customer_data.periods[1])
        )
        await expect(page.get_by_test_id("degraded")).to_have_count(0)
        await shots.take(page, "receipts")
