"""Receipts' pure logic: periods, money figures, the bill snapshot, formatting, e-mail texts, rendering."""

from __future__ import annotations

import dataclasses
import io
import itertools
import logging
import uuid
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree

import pypdf
from hypothesis import given
from hypothesis import strategies as st

from receipts.adapters import rendering
from receipts.adapters.rendering import render_html, render_pdf
from receipts.domain import formatting, periods
from receipts.domain.balances import Entry, figures_for, period_table
from receipts.domain.bill import (
    AttributeChange,
    PaymentFacts,
    TariffRowFacts,
    VatFacts,
    build_snapshot,
    content_hash,
    in_force_during,
    payment_qr_payload,
    rate_text,
    supplier_payee_name,
    value_as_of,
)
from receipts.domain.ebill_message import compose
from receipts.domain.examples import NORMS, example_facts

D = Decimal


def test_periods_and_the_due_date() -> None:
    assert periods.due_date("2025-03") == date(2025, 4, 25)
    assert periods.due_date("2025-12") == date(2026, 1, 25)
    assert periods.last_day("2024-02") == date(2024, 2, 29)
    assert list(periods.span("2024-11", "2025-02")) == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert periods.previous_period("2025-01") == "2024-12"
    assert periods.label("2025-03") == "март 2025"
    assert not periods.is_period("2025-13") and not periods.is_period("2025-3")


def test_money_figures_roll_month_to_month_and_a_late_entry_re_rolls() -> None:
    entries = [
        Entry("opening", "2025-01", D("350.25")),
        Entry("accrual", "2025-01", D("1000.00")),
        Entry("payment", "2025-03", D("500.00")),
        Entry("payment", "2025-03", D("70.00"), reversed=True),
        Entry("correction", "2025-03", D("-20.00")),
    ]
    rows = period_table(entries)
    assert [(r.period, r.opening_balance, r.closing_balance) for r in rows] == [
        ("2025-01", D("350.25"), D("1350.25")),
        ("2025-02", D("1350.25"), D("1350.25")),
        ("2025-03", D("1350.25"), D("830.25")),
    ]
    late = period_table([*entries, Entry("accrual", "2025-02", D("10.00"))])
    assert [r.closing_balance for r in late] == [D("1350.25"), D("1360.25"), D("840.25")]
    # A month after the last one carries its closing balance; one before the first has nothing.
    carried = figures_for(rows, "2025-06")
    assert (carried.opening_balance, carried.accrued, carried.closing_balance) == (
        D("830.25"),
        0,
        D("830.25"),
    )
    assert figures_for(rows, "2024-12").closing_balance == 0


_amounts = st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2)
_entry = st.builds(
    Entry,
    kind=st.sampled_from(["accrual", "correction", "payment"]),
    period=st.sampled_from(["2025-01", "2025-02", "2025-04", "2025-07"]),
    amount=_amounts,
    reversed=st.booleans(),
)


@given(st.lists(_entry, max_size=30), _amounts)
def test_every_month_closes_by_the_formula_and_opens_with_the_previous_close(
    entries: list[Entry], opening: Decimal
) -> None:
    rows = period_table([Entry("opening", "2025-01", opening), *entries])
    assert rows[0].opening_balance == opening
    for before, after in itertools.pairwise(rows):
        assert after.opening_balance == before.closing_balance
        assert periods.next_period(before.period) == after.period
    for row in rows:
        assert row.closing_balance == row.opening_balance + row.accrued + row.corrections - row.paid
    paid = sum((e.amount for e in entries if e.kind == "payment" and not e.reversed), D(0))
    assert sum((r.paid for r in rows), D(0)) == paid


def test_effective_dated_values_and_rows_in_force() -> None:
    history = [
        AttributeChange(date(2025, 1, 10), 1, "2"),
        AttributeChange(date(2025, 3, 15), 4, "3"),
        AttributeChange(date(2025, 3, 15), 6, "4"),  # same day, later event wins
        AttributeChange(date(2025, 5, 1), 5, "1"),
    ]
    assert value_as_of(history, date(2025, 3, 31)) == "4"
    assert value_as_of(history, date(2025, 2, 1)) == "2"
    assert value_as_of(history, date(2024, 1, 1)) == "2"  # before the first change: the earliest
    rows = [
        VatFacts(date(2009, 1, 1), D("0.12")),
        VatFacts(date(2025, 3, 1), D("0.14")),
        VatFacts(date(2025, 3, 16), D("0.16")),
        VatFacts(date(2025, 4, 1), D("0.2")),
    ]
    assert [r.rate for r in in_force_during(rows, "2025-03")] == [D("0.14"), D("0.16")]
    assert [r.rate for r in in_force_during(rows, "2025-02")] == [D("0.12")]


def test_qr_payload_and_rates() -> None:
    assert supplier_payee_name("АО «АлматыЭнергоСбыт»") == "АО АлматыЭнергоСбыт"
    assert payment_qr_payload("АО АлматыЭнергоСбыт", "100200300401", D("5042.36"), "2025-03") == (
        "ST00012|Name=АО АлматыЭнергоСбыт|PersonalAcc=100200300401|Sum=504236|Purpose=Электроэнергия 2025-03"
    )
    assert (rate_text(D("28.9500")), rate_text(D("0.1200")), rate_text(D("14.875")), rate_text(D("90"))) == (
        "28.95",
        "0.12",
        "14.875",
        "90.00",
    )


def test_the_snapshot_of_the_example_bill() -> None:
    facts = example_facts()
    bill = build_snapshot(facts)
    assert (bill["period"], bill["due_date"], bill["amount_due"], bill["overpayment"]) == (
        "2025-03",
        "2025-04-25",
        "5042.36",
        "0.00",
    )
    money = bill["front"]["money"]
    assert (money["opening_balance"], money["accrued"], money["corrections"], money["paid"]) == (
        "0.00",
        "10162.36",
        "-120.00",
        "5000.00",
    )
    assert bill["front"]["meter"]["serial"] == "CE-0001"
    assert bill["back"]["your_limits"] == {"residents": 2, "tier1_kwh": "230.00", "tier2_kwh": "380.00"}
    assert [d["service_code"] for d in bill["back"]["debts"]] == ["electricity"]
    # Hashing is deterministic and sees every change.
    assert content_hash(bill) == content_hash(build_snapshot(facts))
    other = dataclasses.replace(
        facts, payments=[PaymentFacts("p1", date(2025, 3, 5), D("5000.01"), "Halyk Bank")]
    )
    assert content_hash(build_snapshot(other)) != content_hash(bill)


def test_an_overpayment_is_shown_and_nothing_is_due() -> None:
    facts = example_facts()
    overpaid = dataclasses.replace(
        facts,
        figures={
            "electricity": period_table(
                [Entry("accrual", "2025-03", D("100.00")), Entry("payment", "2025-03", D("350.50"))]
            )
        },
    )
    bill = build_snapshot(overpaid)
    assert (bill["amount_due"], bill["overpayment"]) == ("0.00", "250.50")
    assert bill["front"]["qr"]["payload"].split("|")[3] == "Sum=0"
    assert bill["back"]["debts"][0]["overpayment"] == "250.50"
    assert "Переплата: 250,50 ₸" in compose(bill, "ru").body


def test_the_tariff_table_comes_from_the_catalog_rows_in_force() -> None:
    facts = dataclasses.replace(
        example_facts(),
        tariffs=[
            TariffRowFacts(date(2018, 3, 1), D("16.36"), D("14.87"), D("19.63"), D("24.54"), NORMS),
            TariffRowFacts(date(2025, 3, 10), D("31.85"), D("28.95"), D("38.22"), D("47.77"), NORMS),
            TariffRowFacts(date(2025, 7, 1), D("40"), D("30"), D("40"), D("50"), NORMS),
        ],
    )
    bill = build_snapshot(facts)
    assert [t["effective_from"] for t in bill["back"]["tariffs"]] == ["2018-03-01", "2025-03-10"]


def test_formatting() -> None:
    nbsp = "\u00a0"
    assert formatting.number("1234567.50") == f"1{nbsp}234{nbsp}567,50"
    assert formatting.number("-120.00") == "-120,00"
    assert formatting.number("999.00") == "999,00"
    assert formatting.percent("0.16") == f"16{nbsp}%"
    assert formatting.ru_date("2025-04-25") == "25.04.2025"


def test_e_mail_texts_in_three_languages() -> None:
    bill = build_snapshot(example_facts())
    ru, kk, en = compose(bill, "ru"), compose(bill, "kk"), compose(bill, "en")
    assert ru.subject == "Счёт-квитанция за март 2025 г. — лицевой счёт 100200300401"
    assert "К оплате: 5\u00a0042,36 ₸ до 25.04.2025." in ru.body
    assert "наурыз" in kk.subject and "100200300401" in kk.body
    assert en.subject == "Your electricity bill for March 2025, account 100200300401"
    assert ru.attachment_name == "kvitanciya_100200300401_2025-03.pdf"


def test_one_template_gives_the_html_sides_and_the_two_page_pdf() -> None:
    bill = build_snapshot(example_facts(receipt_id=uuid.uuid4()))
    front = render_html(bill, ["front"])
    back = render_html(bill, ["back"])
    assert (
        "СЧЁТ-КВИТАНЦИЯ" in front and "ОБОРОТНАЯ СТОРОНА" not in front and "data:image/png;base64," in front
    )
    assert "ОБОРОТНАЯ СТОРОНА" in back and "с 20 по 25 число" in back
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(bill)))
    assert len(reader.pages) == 2
    first, second = (page.extract_text().replace("\xa0", " ") for page in reader.pages)
    assert "100200300401" in first and "5 042,36" in first and "Сейтказиева Айгуль Маратовна" in first
    assert "ОБОРОТНАЯ СТОРОНА" in second and "Алмалинский РОЭС" in second
    assert [round(float(x)) for x in reader.pages[0].mediabox[2:]] == [595, 842]  # A4 in points


def test_the_pdf_is_rendered_on_the_fast_path_and_is_byte_stable(caplog: object) -> None:
    """WeasyPrint (the fallback engine; Chromium's: test_receipts_pdf_engines.py): the page is well-formed XML (expat parses it, the HTML5 parser isn't needed), both sides' text is
    there, and the same snapshot gives the same bytes: a re-render can replace a stored PDF."""
    bill = build_snapshot(example_facts(receipt_id=uuid.uuid4()))
    # What other services send is printed as text, whatever it holds (control characters are dropped).
    bill["front"]["account"]["payer_name"] = 'Иван\x0bПетров <svg onload="x()"/> & ]]>'
    page = render_html(bill, inline_css=False)
    root = ElementTree.fromstring(page)
    assert root.tag == "html" and len(root.findall("./body/section")) == 2
    assert ">\n<" not in page  # the line breaks between tags are dropped
    engine = rendering._engine()
    assert isinstance(engine.document(page), rendering._BillPage)
    with caplog.at_level(logging.WARNING, logger=rendering.__name__):  # type: ignore[attr-defined]
        first, second = rendering.weasyprint_pdf(bill), rendering.weasyprint_pdf(bill)
    assert first == second
    assert not caplog.records  # type: ignore[attr-defined]
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(first)).pages).replace("\xa0", " ")
    for expected in ("Лицевой счёт: 100200300401", 'Плательщик: ИванПетров <svg onload="x()"/> & ]]>', "Итого без НДС", "Сальдо на конец", "Как работают ступени",
                     "Где и как оплатить", "Контакт-центр", bill["receipt_id"]):  # fmt: skip
        assert expected in text, expected
    # A page that isn't XML still renders, through WeasyPrint's HTML5 parser, with the bill's stylesheets.
    fallback = engine.render("<html><body><p>Квитанция<br>№ 1</p></body></html>")
    assert "Квитанция" in pypdf.PdfReader(io.BytesIO(fallback)).pages[0].extract_text()


def test_the_qr_code_is_one_pixel_per_module_with_a_quiet_zone() -> None:
    import base64
    import struct

    import segno

    payload = payment_qr_payload("АО АлматыЭнергоСбыт", "100200300401", Decimal("5042.36"), "2025-03")
    png = base64.b64decode(rendering.qr_data_uri(payload).split(",", 1)[1])
    width, height = struct.unpack(">II", png[16:24])
    qr = segno.make(payload, error="m", encoding="utf-8", micro=False)
    assert width == height == qr.symbol_size(scale=1, border=2)[0]
