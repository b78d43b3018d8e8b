"""Bills on the real stack: issue, field-by-field content, PDF, reproducibility, e-bill delivery, authorization.

The input events are published as their owners (accounts, ledger, calculator) would publish them. Every
expected number is computed here, independently of the service's code.

The stack's own services may be running on the same topics and react to these synthetic events (the
ledger answers AccountOpened and ChargeCalculated on `ledger:{no}:electricity`, numbering from 1): each
test publishes and applies its ledger stream before the account and the charges, so the projection drops
those later, lower-numbered events as already seen. The synthetic facts agree with what the ledger would
derive anyway (AccountOpened carries the same opening balance).
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import os
import random
import uuid
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import orjson
import pypdf
import pytest

from contracts.envelope import Envelope
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from contracts.events import ledger as led
from contracts.events.receipts import TOPIC as RECEIPTS_TOPIC
from deploy.local.smtp_sink import read_messages
from receipts.adapters import rendering
from receipts.adapters.pdf_renderer import PDFS_BATCHED, RENDER_YIELDS, PdfRenderer
from receipts.adapters.read_models import load_bill_facts
from receipts.adapters.rendering import PDFS_PRINTED
from receipts.domain.bill import build_snapshot, content_hash
from receipts.domain.examples import example_facts
from tests.support.stack import eventually, produce

D = Decimal
NORMS = [
    {"electric_stove": False, "living_alone": False, "tier1_kwh": "90", "tier2_kwh": "160"},
    {"electric_stove": True, "living_alone": False, "tier1_kwh": "115", "tier2_kwh": "190"},
    {"electric_stove": False, "living_alone": True, "tier1_kwh": "115", "tier2_kwh": "160"},
    {"electric_stove": True, "living_alone": True, "tier1_kwh": "140", "tier2_kwh": "190"},
]


def r2(value: Decimal) -> Decimal:
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


def tiered_charge(
    charge_id: str,
    account_no: str,
    period: str,
    previous: tuple[date, Decimal],
    current: tuple[date, Decimal],
    pieces: list[tuple[date, date, tuple[Decimal, Decimal, Decimal]]],
    residents: int,
    norm: tuple[Decimal, Decimal],
    vat_rate: Decimal,
) -> calc.ChargeCalculated:
    """RATING.md §4 for a tiered account, written out independently."""
    days = (current[0] - previous[0]).days
    q = current[1] - previous[1]
    lines, net, vat, allocated = [], D("0"), D("0"), D("0")
    for i, (a, b, rates) in enumerate(pieces):
        d = (b - a).days
        qi = q - allocated if i == len(pieces) - 1 else r2(q * d / days)
        allocated += qi
        l1 = r2(norm[0] * residents * d / D("30.5"))
        l2 = r2(norm[1] * residents * d / D("30.5"))
        k1 = min(qi, l1)
        k2 = min(qi - k1, l2 - l1)
        k3 = qi - k1 - k2
        piece_net = D("0")
        for tier, kwh, limit, rate in (
            ("1", k1, l1, rates[0]),
            ("2", k2, l2, rates[1]),
            ("3", k3, None, rates[2]),
        ):
            amount = r2(kwh * rate)
            piece_net += amount
            lines.append(
                calc.ChargeLine(
                    from_date=a, to_date=b, tier=tier, limit_kwh=limit, kwh=kwh, rate=rate, amount=amount
                )  # type: ignore[arg-type]
            )
        net += piece_net
        vat += r2(piece_net * vat_rate)
    return calc.ChargeCalculated(
        charge_id=charge_id,
        account_no=account_no,
        period=period,
        previous=calc.ReadingPoint(date=previous[0], value=previous[1]),
        current=calc.ReadingPoint(date=current[0], value=current[1]),
        days=days,
        consumption_kwh=q,
        tariff_option_applied="tiered",
        lines=lines,
        net_total=net,
        vat=vat,
        total=net + vat,
    )


def money_text(value: Decimal) -> str:
    """How the bill prints money: '12 345,67'."""
    whole, _, fraction = f"{value:.2f}".partition(".")
    return f"{int(whole):,}".replace(",", " ") + "," + fraction


def pdf_text(pdf: bytes) -> tuple[int, str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return len(reader.pages), text.replace("\xa0", " ").replace("\u202f", " ")


def assert_fonts_embedded(pdf: bytes) -> None:
    """Every font of every page is embedded (DejaVu Sans subsets, with the Cyrillic)."""
    for page in pypdf.PdfReader(io.BytesIO(pdf)).pages:
        page_fonts = [f.get_object() for f in page["/Resources"]["/Font"].values()]
        assert page_fonts
        for font in page_fonts:
            descendant = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            assert "/FontFile2" in descendant["/FontDescriptor"], font
            assert "DejaVu" in str(font["/BaseFont"]), font


def pdf_producer(pdf: bytes) -> str:
    """Who printed it, for a failure's message: Chromium writes "Skia/PDF", WeasyPrint "WeasyPrint"."""
    try:
        metadata = pypdf.PdfReader(io.BytesIO(pdf)).metadata or {}
        return f"{pdf[:8]!r}, {len(pdf)} bytes, producer {metadata.get('/Producer')!r}"
    except Exception as exc:  # the message must not hide the comparison's failure
        return f"{pdf[:8]!r}, {len(pdf)} bytes, unreadable ({exc!r})"


def assert_same_pdf(actual: bytes, expected: bytes, what: str, caplog: pytest.LogCaptureFixture) -> None:
    """Byte-equal PDFs; if not, which comparison failed, who printed each, and what the engines logged (a
    Chromium fallback, a batch printed bill by bill): a byte diff of two PDFs says none of that."""
    if actual == expected:
        return
    engines = [
        f"{r.name}: {r.getMessage()} {r.__dict__.get('error', '')}"
        for r in caplog.records
        if r.name.startswith("receipts.adapters") and r.levelno >= logging.INFO
    ]
    raise AssertionError(
        f"{what}: {pdf_producer(actual)} != {pdf_producer(expected)}; the engines logged {engines}"
    )


async def insert_bill(s: Any, snapshot: dict[str, Any], *, priority: int = 0, later_s: int = 0) -> None:
    """A bill as issuing stores it, queued for its PDF (`later_s` after now: after the bills queued so far)."""
    await s.fetch(
        "INSERT INTO receipts (receipt_id, account_no, period, amount_due, overpayment, due_date, issued_at,"
        " snapshot, content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s) RETURNING 1",
        (snapshot["receipt_id"], snapshot["account_no"], snapshot["period"], D(snapshot["amount_due"]),
         D(snapshot["overpayment"]), snapshot["due_date"], snapshot["issued_at"],
         orjson.dumps(snapshot).decode(), content_hash(snapshot)),
    )  # fmt: skip
    await s.fetch(
        "INSERT INTO pdf_renders (receipt_id, priority, queued_at)"
        " VALUES (%s, %s, now() + make_interval(secs => %s)) RETURNING 1",
        (snapshot["receipt_id"], priority, later_s),
    )


def other_bills(s: Any, n: int) -> list[dict[str, Any]]:
    return [
        build_snapshot(example_facts(account_no=s.new_account_no(), receipt_id=uuid.uuid4()))
        for _ in range(n)
    ]


def mails_to(address: str) -> list[Any]:
    candidates = read_messages(os.environ["SMTP_SINK_DIR"], containing=address.encode())
    return [m for m in candidates if address in str(m.get("X-RcptTo", ""))]


async def test_a_period_gives_the_right_bill_frozen_printed_and_mailed_once(
    receipts: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s = receipts
    caplog.set_level(logging.INFO, logger="receipts.adapters")  # the engines' starts, for a failure's message
    # This process's Chromium (the API's on-demand renders, the prints again below) starts now: a start that
    # fails says so here, not as a WeasyPrint PDF much later.
    own_browser = rendering.chromium_engine()
    assert own_browser is not None
    await asyncio.to_thread(own_browser.start)
    no = s.new_account_no()
    year = random.randint(2100, 2199)  # the tariff catalog is shared: our own years keep it ours
    period, prev = f"{year}-03", f"{year}-02"
    alice, bob = uuid.uuid4(), uuid.uuid4()
    email = f"ebill-{uuid.uuid4().hex[:10]}@example.test"
    office = f"T{uuid.uuid4().hex[:10].upper()}"
    serial = f"CE-{uuid.uuid4().hex[:6]}"
    account_stream = acc.account_stream(no)

    # --- ledger first: opening balance, last month, this month's payments (one reversed), a correction -----
    # The stack's own ledger may be running: it answers our AccountOpened with an OpeningBalanceSet and our
    # ChargeCalculated with an AccrualPosted, on this same stream, numbered from 1. Publishing (and applying)
    # our stream first keeps its versions ahead, so the projection drops those as already seen.
    # (And another service of the account, for «Задолженность по услугам».)
    await s.publish(
        led.ledger_stream(no, "waste"),
        led.OpeningBalanceSet(account_no=no, service_code="waste", period=f"{year}-01", amount=D("1500.00")),
    )
    await s.wait_applied("ledger", led.ledger_stream(no, "waste"), 1)
    ledger = led.ledger_stream(no, "electricity")
    p2, p3 = f"pay-{uuid.uuid4().hex[:8]}", f"pay-{uuid.uuid4().hex[:8]}"
    ledger_events = await s.publish(
        ledger,
        led.OpeningBalanceSet(account_no=no, service_code="electricity", period=f"{year}-01", amount=D("350.25")),
        led.AccrualPosted(account_no=no, service_code="electricity", charge_id=f"ch-old-{no}", period=prev,
                          amount=D("8000.00"), consumption_kwh=D("250.00")),
        led.PaymentReceived(account_no=no, service_code="electricity", payment_id=f"pay-{uuid.uuid4().hex[:8]}",
                            paid_on=date(year, 2, 10), period=prev, amount=D("5000.00"), bank="Halyk Bank"),
        led.PaymentReceived(account_no=no, service_code="electricity", payment_id=p2, paid_on=date(year, 3, 5),
                            period=period, amount=D("4000.00"), bank="Kaspi Bank"),
        led.PaymentReceived(account_no=no, service_code="electricity", payment_id=p3, paid_on=date(year, 3, 7),
                            period=period, amount=D("100.00"), bank="Halyk Bank"),
        led.PaymentReversed(account_no=no, service_code="electricity", payment_id=p3, period=period,
                            amount=D("100.00"), reason="отозван банком"),
        led.CorrectionPosted(account_no=no, service_code="electricity", correction_id=f"cor-{no}", period=period,
                             amount=D("-120.00"), reason="Перерасчёт по заявлению"),
    )  # fmt: skip
    await s.wait_applied("ledger", ledger, len(ledger_events))

    # --- accounts: the register, effective-dated changes, the office, alice's link ------------------
    await s.publish(
        account_stream,
        acc.AccountOpened(
            account_no=no, payer_name="Сейтказиев Марат", address="г. Алматы, мкр. Самал-2, д. 58, кв. 14",
            residents=2, electric_stove=True, living_alone=False, tariff_option="tiered",
            district_office_code=office, opened_on=date(year, 1, 10), opening_balance=D("350.25"),
        ),
        acc.MeterInstalled(account_no=no, serial=serial, digits=6, installed_on=date(year, 1, 10),
                           initial_reading=D("100.00")),
        acc.PayerChanged(account_no=no, payer_name="Сейтказиева Айгуль Маратовна", effective_from=date(year, 2, 1)),
        acc.ResidentsChanged(account_no=no, residents=3, effective_from=date(year, 3, 15)),
        acc.TariffOptionChanged(account_no=no, tariff_option="flat", effective_from=date(year, 5, 1)),
    )  # fmt: skip
    await s.publish(
        acc.district_office_stream(office),
        acc.DistrictOfficeChanged(code=office, name="Алмалинский РОЭС", address="г. Алматы, ул. Жибек Жолы, 135",
                                  phone="+7 (727) 222-33-44", hours="пн–пт 9:00–18:00"),
    )  # fmt: skip
    await s.publish(acc.account_links_stream(no), acc.AccountLinked(account_no=no, user_id=alice))
    await s.wait_applied("account-links", acc.account_links_stream(no), 1)
    await s.wait_applied("accounts", account_stream, 5)

    # alice subscribes to the e-bill (twice: the same subscription); bob can't, nor see anything.
    put = await s.api.put(f"/internal/v1/accounts/{no}/ebill", json={"email": email}, headers=s.auth(alice))
    assert put.status_code == 200, put.text
    assert put.json()["email"] == email and put.json()["subscribed"] is True
    assert (
        await s.api.put(f"/internal/v1/accounts/{no}/ebill", json={"email": email}, headers=s.auth(alice))
    ).status_code == 200
    subscribed = await s.fetch("SELECT event_type FROM events WHERE stream_id = %s", (f"ebill:{no}:{alice}",))
    assert subscribed == [("EBillSubscribed",)]
    mine = await s.api.get(f"/internal/v1/accounts/{no}/ebill", headers=s.auth(alice))
    assert [(x["email"], x["language"]) for x in mine.json()] == [(email, "ru")]

    # --- calculator: tariff catalog (a change inside the period), VAT, the reading, the charge, billed -----
    catalog = f"tariff-catalog-test-{uuid.uuid4().hex[:8]}"
    rates_jan = (D("28.95"), D("38.22"), D("47.77"))
    rates_mid = (D("30.10"), D("39.50"), D("49.00"))
    change = date(year, 3, 16)
    await s.publish(
        catalog,
        calc.TariffPublished(effective_from=date(year, 1, 1), flat=D("31.85"), tier1=rates_jan[0], tier2=rates_jan[1],
                             tier3=rates_jan[2], norms=NORMS),
        calc.TariffPublished(effective_from=change, flat=D("33.00"), tier1=rates_mid[0], tier2=rates_mid[1],
                             tier3=rates_mid[2], norms=NORMS),
        calc.VatRateChanged(effective_from=date(year, 1, 1), rate=D("0.16")),
    )  # fmt: skip
    previous, current = (date(year, 2, 20), D("1000.00")), (date(year, 3, 20), D("1480.50"))
    charge = tiered_charge(
        f"ch-{uuid.uuid4().hex[:10]}", no, period, previous, current,
        [(previous[0], change, rates_jan), (change, current[0], rates_mid)], 3, (D("115"), D("190")), D("0.16"),
    )  # fmt: skip
    reading = calc.ReadingSubmitted(
        reading_id=f"rd-{uuid.uuid4().hex[:8]}", account_no=no, meter_serial=serial, reading_date=current[0],
        value=current[1], source="customer",
    )  # fmt: skip
    await s.publish(f"meter-readings:{no}", reading, charge)
    billed_stream = f"billing-period:{no}:{period}"
    [billed] = await s.publish(
        billed_stream, calc.PeriodBilled(account_no=no, period=period, charge_ids=[charge.charge_id])
    )
    await s.wait_applied("calculator", billed_stream, 1)
    await s.wait_applied("calculator", f"meter-readings:{no}", 2)
    # PeriodBilled came first: without the ledger's accrual there is no bill yet.
    assert await s.fetch("SELECT count(*) FROM receipts WHERE account_no = %s", (no,)) == [(0,)]

    # The ledger's accrual of the charge completes the period.
    ledger_events += await s.publish(
        ledger,
        led.AccrualPosted(account_no=no, service_code="electricity", charge_id=charge.charge_id, period=period,
                          amount=charge.total, consumption_kwh=charge.consumption_kwh),
    )  # fmt: skip

    async def issued() -> bool:
        return await s.fetch("SELECT count(*) FROM receipts WHERE account_no = %s", (no,)) == [(1,)]

    await eventually(issued)

    # --- rendered at issue time: queued by the issuing transaction (first in line: an e-bill waits for it),
    # then rendered and stored, off the queue, by the worker's renderer in a render process of its own,
    # before anyone asks for it.
    # Three more bills with e-bills to send are queued after it: the renderer claims the four (the first in
    # line) and prints them as one document, split per bill.
    assert await s.fetch(
        "SELECT priority FROM pdf_renders JOIN receipts USING (receipt_id) WHERE account_no = %s", (no,)
    ) == [(1,)]
    others = other_bills(s, 3)
    for i, other in enumerate(others):
        await insert_bill(s, other, priority=1, later_s=60 + i)
    batched = PDFS_BATCHED._value.get()
    by_engine = {e: PDFS_PRINTED.labels(e)._value.get() for e in ("chromium", "weasyprint")}
    s.start_renderer(processes=1, batch=4)
    await s.wait(
        "SELECT count(*) FROM receipt_pdfs JOIN receipts USING (receipt_id) WHERE account_no = %s",
        (no,),
        [(1,)],
        timeout_s=300,
    )
    ids = [uuid.UUID(o["receipt_id"]) for o in others]
    await s.wait(
        "SELECT count(*) FROM receipt_pdfs WHERE receipt_id = ANY(%s)", (ids,), [(3,)], timeout_s=300
    )
    assert PDFS_BATCHED._value.get() - batched == 4
    # Counted by the engine that printed them (a fallback to WeasyPrint would show on a dashboard).
    assert {e: PDFS_PRINTED.labels(e)._value.get() - n for e, n in by_engine.items()} == {
        "chromium": 4,
        "weasyprint": 0,
    }
    for other in others:
        [(other_pdf,)] = await s.fetch(
            "SELECT pdf FROM receipt_pdfs WHERE receipt_id = %s", (other["receipt_id"],)
        )
        other_pages, other_text = pdf_text(bytes(other_pdf))
        assert other_pages == 2 and other["account_no"] in other_text and no not in other_text
    [(stored,)] = await s.fetch(
        "SELECT pdf FROM receipt_pdfs JOIN receipts USING (receipt_id) WHERE account_no = %s", (no,)
    )
    assert await s.fetch(
        "SELECT count(*) FROM pdf_renders JOIN receipts USING (receipt_id) WHERE account_no = %s", (no,)
    ) == [(0,)]

    # --- the bill, field by field, against numbers computed here -------------------------------------
    opening = D("350.25") + D("8000.00") - D("5000.00")
    closing = opening + charge.total - D("120.00") - D("4000.00")
    assert closing > 0
    due = date(year, 4, 25)

    listing = await s.api.get(
        f"/internal/v1/accounts/{no}/receipts", params={"from": prev, "to": period}, headers=s.auth(alice)
    )
    assert listing.status_code == 200
    [row] = listing.json()
    assert (row["period"], row["amount_due"], row["due_date"]) == (period, f"{closing:.2f}", due.isoformat())
    assert (await s.api.get(f"/internal/v1/accounts/{no}/receipts", params={"from": f"{year}-04"},
                            headers=s.auth(alice))).json() == []  # fmt: skip

    response = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}", headers=s.auth(alice))
    assert response.status_code == 200
    bill = response.json()
    front, back = bill["front"], bill["back"]
    assert (bill["account_no"], bill["period"], bill["due_date"]) == (no, period, due.isoformat())
    assert (bill["amount_due"], bill["overpayment"]) == (f"{closing:.2f}", "0.00")
    assert front["supplier"]["name"] == "АО «АлматыЭнергоСбыт»" and front["supplier"]["phone"]
    assert front["account"] == {
        "account_no": no,
        "payer_name": "Сейтказиева Айгуль Маратовна",  # the payer as of the period's end
        "address": "г. Алматы, мкр. Самал-2, д. 58, кв. 14",
        "residents": 3,  # changed on the 15th
        "tariff_option": "tiered",  # the switch to flat takes effect in May
        "tariff_option_label": "дифференцированный тариф",
        "electric_stove": True,
        "living_alone": False,
    }
    assert front["meter"] == {
        "serial": serial,
        "previous": {"date": previous[0].isoformat(), "value": "1000.00"},
        "current": {"date": current[0].isoformat(), "value": "1480.50"},
        "consumption_kwh": "480.50",
        "estimated": False,
    }
    [printed] = front["charges"]
    assert printed["days"] == (current[0] - previous[0]).days
    assert [(ln["from"], ln["to"], ln["tier"], ln["limit_kwh"], ln["kwh"], ln["rate"], ln["amount"]) for ln in printed["lines"]] == [
        (ln.from_date.isoformat(), ln.to_date.isoformat(), ln.tier, None if ln.limit_kwh is None else f"{ln.limit_kwh:.2f}",
         f"{ln.kwh:.2f}", f"{ln.rate:.2f}", f"{ln.amount:.2f}")
        for ln in charge.lines
    ]  # fmt: skip
    assert len(printed["lines"]) == 6  # two tariff pieces × three tiers
    assert (printed["net_total"], printed["vat"], printed["total"]) == (
        f"{charge.net_total:.2f}",
        f"{charge.vat:.2f}",
        f"{charge.total:.2f}",
    )
    assert front["money"] == {
        "service_code": "electricity",
        "service_name": "Электроэнергия",
        "opening_balance": f"{opening:.2f}",
        "accrued": f"{charge.total:.2f}",
        "corrections": "-120.00",
        "paid": "4000.00",
        "closing_balance": f"{closing:.2f}",
        "amount_due": f"{closing:.2f}",
        "overpayment": "0.00",
    }
    assert front["payments"] == [
        {"payment_id": p2, "date": date(year, 3, 5).isoformat(), "amount": "4000.00", "bank": "Kaspi Bank"}
    ]  # the reversed one is gone
    assert front["corrections"] == [
        {"correction_id": f"cor-{no}", "amount": "-120.00", "reason": "Перерасчёт по заявлению"}
    ]
    tiyn = int(closing * 100)
    assert front["qr"]["payload"] == (
        f"ST00012|Name=АО АлматыЭнергоСбыт|PersonalAcc={no}|Sum={tiyn}|Purpose=Электроэнергия {period}"
    )
    assert back["tariffs"] == [
        {
            "effective_from": f"{year}-01-01",
            "flat": "31.85",
            "tier1": "28.95",
            "tier2": "38.22",
            "tier3": "47.77",
        },
        {
            "effective_from": change.isoformat(),
            "flat": "33.00",
            "tier1": "30.10",
            "tier2": "39.50",
            "tier3": "49.00",
        },
    ]
    assert back["vat_rates"] == [{"effective_from": f"{year}-01-01", "rate": "0.16"}]
    assert [(n["electric_stove"], n["living_alone"], n["tier1_kwh"], n["tier2_kwh"]) for n in back["norms"]] == [
        (False, False, "90.00", "160.00"), (True, False, "115.00", "190.00"),
        (False, True, "115.00", "160.00"), (True, True, "140.00", "190.00"),
    ]  # fmt: skip
    assert back["your_limits"] == {"residents": 3, "tier1_kwh": "345.00", "tier2_kwh": "570.00"}
    assert back["debts"] == [
        {"service_code": "electricity", "service_name": "Электроэнергия", "closing_balance": f"{closing:.2f}",
         "debt": f"{closing:.2f}", "overpayment": "0.00"},
        {"service_code": "waste", "service_name": "waste", "closing_balance": "1500.00", "debt": "1500.00",
         "overpayment": "0.00"},
    ]  # fmt: skip
    assert back["total_debt"] == f"{closing + D('1500.00'):.2f}"
    assert back["district_office"] == {
        "code": office, "name": "Алмалинский РОЭС", "address": "г. Алматы, ул. Жибек Жолы, 135",
        "phone": "+7 (727) 222-33-44", "hours": "пн–пт 9:00–18:00",
    }  # fmt: skip
    assert any("с 20 по 25 число" in n for n in back["notices"])
    assert back["how_to_pay"] and back["tiers_explained"] and back["contact_center"]["phone"]
    issued_hash = bill["content_hash"]
    assert len(issued_hash) == 64

    # --- the PDF: two pages, the account number and the amount; the HTML views ----------------------
    pdf_response = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}.pdf", headers=s.auth(alice))
    assert pdf_response.status_code == 200
    assert pdf_response.headers["content-type"] == "application/pdf"
    assert pdf_response.headers["content-disposition"].startswith("attachment;")
    pages, text = pdf_text(pdf_response.content)
    assert pages == 2
    assert no in text and money_text(closing) in text
    assert "ОБОРОТНАЯ СТОРОНА" in text and "Алмалинский РОЭС" in text
    assert_same_pdf(
        pdf_response.content, bytes(stored), "the download (a read of what the renderer stored)", caplog
    )
    assert not any(o["account_no"] in text for o in others)  # nothing of the others in its batch
    assert "Skia" in str(
        pypdf.PdfReader(io.BytesIO(bytes(stored))).metadata["/Producer"]
    )  # Chromium printed it
    assert_fonts_embedded(bytes(stored))
    again = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}.pdf", headers=s.auth(alice))
    assert_same_pdf(again.content, pdf_response.content, "the second download", caplog)
    front_html = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}/html", headers=s.auth(alice))
    back_html = await s.api.get(
        f"/internal/v1/accounts/{no}/receipts/{period}/html?side=back", headers=s.auth(alice)
    )
    assert front_html.status_code == back_html.status_code == 200
    assert "СЧЁТ-КВИТАНЦИЯ" in front_html.text and "ОБОРОТНАЯ СТОРОНА" not in front_html.text
    assert "ОБОРОТНАЯ СТОРОНА" in back_html.text and "@page" in back_html.text

    # --- the e-bill arrives once; then everything that issued it is redelivered ----------------------
    s.start_sender()

    async def mailed() -> bool:
        return len(mails_to(email)) >= 1

    await eventually(mailed)
    [mail] = mails_to(email)
    assert no in str(mail["Subject"])
    [attachment] = [part for part in mail.iter_attachments()]
    assert attachment.get_content_type() == "application/pdf"
    mail_pages, mail_text = pdf_text(attachment.get_content())
    assert mail_pages == 2 and no in mail_text and money_text(closing) in mail_text
    assert_same_pdf(
        attachment.get_content(), pdf_response.content, "the e-bill's attachment (the stored PDF)", caplog
    )
    await s.wait(
        "SELECT count(*) FROM ebill_deliveries WHERE sent_at IS NOT NULL AND email = %s", (email,), [(1,)]
    )

    receipt_stream = f"receipt:{no}:{period}"
    own = await s.fetch(
        "SELECT event_id, event_type, stream_version, payload FROM events WHERE stream_id = %s ORDER BY stream_version",
        (receipt_stream,),
    )
    assert [(t, v) for _, t, v, _ in own] == [("ReceiptIssued", 1), ("EBillSent", 2)]
    assert own[0][3]["content_hash"] == issued_hash and own[0][3]["amount_due"] == f"{closing:.2f}"
    assert own[1][3]["email"] == email

    # Redeliveries: the same PeriodBilled and accrual again, a new PeriodBilled for the same period, our own
    # ReceiptIssued again on its topic; and a second sender racing the first.
    await s.send(billed, ledger_events[-1])
    await s.publish(
        billed_stream, calc.PeriodBilled(account_no=no, period=period, charge_ids=[charge.charge_id])
    )
    receipt_issued = Envelope(
        event_id=own[0][0], event_type="ReceiptIssued", schema_version=1, stream_id=receipt_stream,
        stream_version=1, producer="receipts", payload=own[0][3],
    )  # fmt: skip
    await produce(s.bootstrap, RECEIPTS_TOPIC, [(receipt_stream.encode(), receipt_issued.to_json_bytes())])
    s.start_sender()
    await s.wait_applied("calculator", billed_stream, 2)
    await s.wait("SELECT count(*) FROM ebill_deliveries WHERE sent_at IS NULL", (), [(0,)])
    assert await s.fetch("SELECT count(*) FROM receipts WHERE account_no = %s", (no,)) == [(1,)]
    assert await s.fetch("SELECT count(*) FROM ebill_deliveries WHERE email = %s", (email,)) == [(1,)]
    assert len(mails_to(email)) == 1
    assert [
        r[1]
        for r in await s.fetch(
            "SELECT event_id, event_type FROM events WHERE stream_id = %s", (receipt_stream,)
        )
    ] == [
        "ReceiptIssued",
        "EBillSent",
    ]

    # --- later changes don't alter the issued bill ---------------------------------------------------
    await s.publish(
        catalog,
        calc.TariffPublished(effective_from=date(year, 3, 1), flat=D("40.00"), tier1=D("35.00"), tier2=D("45.00"),
                             tier3=D("55.00"), norms=NORMS),
    )  # fmt: skip
    await s.publish(
        account_stream,
        acc.ResidentsChanged(account_no=no, residents=5, effective_from=date(year, 3, 1)),
        acc.PayerChanged(account_no=no, payer_name="Новый Плательщик", effective_from=date(year, 3, 1)),
    )
    await s.publish(
        acc.district_office_stream(office),
        acc.DistrictOfficeChanged(code=office, name="Алмалинский РОЭС", address="г. Алматы, пр. Абая, 1 (новый адрес)",
                                  phone="+7 (727) 999-99-99", hours="пн–сб 9:00–19:00"),
    )  # fmt: skip
    await s.publish(
        ledger,
        led.PaymentReceived(account_no=no, service_code="electricity", payment_id=f"pay-{uuid.uuid4().hex[:8]}",
                            paid_on=date(year, 3, 30), period=period, amount=D("999.00"), bank="Late Bank"),
    )  # fmt: skip
    await s.wait_applied("accounts", account_stream, 7)
    await s.wait_applied("accounts", acc.district_office_stream(office), 2)
    await s.wait_applied("ledger", ledger, len(ledger_events) + 1)
    await s.wait("SELECT count(*) FROM tariff_rows WHERE effective_from = %s", (date(year, 3, 1),), [(1,)])

    # Built from the projections now, the bill would differ...
    async with s.harness.pool.connection() as conn:
        rebuilt = await load_bill_facts(
            conn, no, period, [charge.charge_id], receipt_id=uuid.UUID(bill["receipt_id"]),
            issued_at=datetime.fromisoformat(bill["issued_at"]),
        )  # fmt: skip
    assert rebuilt is not None and content_hash(build_snapshot(rebuilt)) != issued_hash
    # ...but the issued bill is its snapshot: same data, same hash, the same PDF even when rendered afresh
    # by the API process's Chromium instead of the render process's: in the same batch, byte for byte (the
    # same engine, Chromium build and fonts; the print time is replaced by the bill's issue time); alone (a
    # download on demand), the same pages and text (not the same bytes: the batch's font subsets hold the
    # glyphs of all four bills, and the split is written by pypdf).
    later = (await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}", headers=s.auth(alice))).json()
    assert later == bill
    snapshots = {
        str(r[0]): r[1]
        for r in await s.fetch(
            "SELECT receipt_id, snapshot FROM receipts WHERE receipt_id = ANY(%s)",
            ([uuid.UUID(bill["receipt_id"]), *ids],),
        )
    }  # as the renderer read them
    in_order = [snapshots[bill["receipt_id"]], *(snapshots[o["receipt_id"]] for o in others)]
    again_batched = await asyncio.to_thread(rendering.render_pdfs, in_order)
    assert_same_pdf(again_batched[0], bytes(stored), "the batch printed again here", caplog)
    receipt_id = uuid.UUID(bill["receipt_id"])
    await s.fetch("DELETE FROM receipt_pdfs WHERE receipt_id = %s RETURNING 1", (receipt_id,))
    caplog.clear()
    printed_by_chromium = PDFS_PRINTED.labels("chromium")._value.get()
    fresh = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}.pdf", headers=s.auth(alice))
    assert (
        PDFS_PRINTED.labels("chromium")._value.get() - printed_by_chromium == 1
    )  # the API's render, counted
    fallbacks = [
        r.__dict__.get("error") for r in caplog.records if "chromium could not print" in r.getMessage()
    ]
    assert fallbacks == [], f"the download was printed by WeasyPrint: Chromium failed with {fallbacks}"
    assert pdf_text(fresh.content) == (pages, text)
    alone = await asyncio.to_thread(rendering.render_pdf, in_order[0])
    assert_same_pdf(
        fresh.content, alone, "the download on demand against the bill printed alone here", caplog
    )
    assert await s.fetch("SELECT count(*) FROM receipt_pdfs WHERE receipt_id = %s", (receipt_id,)) == [(1,)]

    # --- another user's bill is a 404, never a 403 -----------------------------------------------------
    for method, path in [
        ("GET", f"/internal/v1/accounts/{no}/receipts"),
        ("GET", f"/internal/v1/accounts/{no}/receipts/{period}"),
        ("GET", f"/internal/v1/accounts/{no}/receipts/{period}.pdf"),
        ("GET", f"/internal/v1/accounts/{no}/receipts/{period}/html?side=back"),
        ("GET", f"/internal/v1/accounts/{no}/ebill"),
        ("DELETE", f"/internal/v1/accounts/{no}/ebill"),
    ]:
        answer = await s.api.request(method, path, headers=s.auth(bob))
        assert answer.status_code == 404, (method, path)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "account_not_found"
    bob_put = await s.api.put(
        f"/internal/v1/accounts/{no}/ebill", json={"email": "bob@example.test"}, headers=s.auth(bob)
    )
    assert bob_put.status_code == 404
    assert (await s.api.get(f"/internal/v1/accounts/{no}/receipts")).status_code == 401
    missing = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{year}-07", headers=s.auth(alice))
    assert (missing.status_code, missing.json()["code"]) == (404, "receipt_not_found")
    bad_period = await s.api.get(
        f"/internal/v1/accounts/{no}/receipts", params={"from": "2025-3"}, headers=s.auth(alice)
    )
    assert bad_period.status_code == 422 and bad_period.json()["errors"] == [
        {"field": "from", "message": "Период в формате ГГГГ-ММ"}
    ]
    bad_email = await s.api.put(
        f"/internal/v1/accounts/{no}/ebill", json={"email": "nope"}, headers=s.auth(alice)
    )
    assert (bad_email.status_code, bad_email.json()["errors"][0]["field"]) == (422, "email")

    # Unsubscribing ends it (and is idempotent).
    assert (await s.api.delete(f"/internal/v1/accounts/{no}/ebill", headers=s.auth(alice))).status_code == 204
    assert (await s.api.delete(f"/internal/v1/accounts/{no}/ebill", headers=s.auth(alice))).status_code == 204
    assert (await s.api.get(f"/internal/v1/accounts/{no}/ebill", headers=s.auth(alice))).json() == []
    await s.stop_senders()
    await s.stop_renderers()


async def test_an_overpaid_period_issued_when_its_account_arrives_last(receipts: Any) -> None:
    """Ledger first, then the charge and PeriodBilled, the account last; the payment exceeds the bill."""
    s = receipts
    no = s.new_account_no()
    year = random.randint(2100, 2199)
    period = f"{year}-06"
    user = uuid.uuid4()
    charge_id = f"est-{uuid.uuid4().hex[:10]}"
    estimate = calc.ChargeCalculated(
        charge_id=charge_id, account_no=no, period=period, previous=None, current=None, days=30,
        consumption_kwh=D("100.00"), tariff_option_applied="flat", estimated=True,
        lines=[calc.ChargeLine(from_date=date(year, 6, 1), to_date=date(year, 7, 1), tier="flat", limit_kwh=None,
                               kwh=D("100.00"), rate=D("31.85"), amount=D("3185.00"))],
        net_total=D("3185.00"), vat=D("382.20"), total=D("3567.20"),
    )  # fmt: skip
    ledger = led.ledger_stream(no, "electricity")
    await s.publish(
        ledger,
        led.PaymentReceived(account_no=no, service_code="electricity", payment_id=f"pay-{uuid.uuid4().hex[:8]}",
                            paid_on=date(year, 6, 3), period=period, amount=D("5000.00"), bank="Kaspi Bank"),
        led.AccrualPosted(account_no=no, service_code="electricity", charge_id=charge_id, period=period,
                          amount=estimate.total, consumption_kwh=D("100.00"), estimated=True),
    )  # fmt: skip
    await s.publish(
        f"billing-period:{no}:{period}",
        estimate,
        calc.PeriodBilled(account_no=no, period=period, charge_ids=[charge_id]),
    )
    await s.publish(acc.account_links_stream(no), acc.AccountLinked(account_no=no, user_id=user))
    await s.wait_applied("calculator", f"billing-period:{no}:{period}", 2)
    await s.wait_applied("ledger", ledger, 2)
    assert await s.fetch("SELECT count(*) FROM receipts WHERE account_no = %s", (no,)) == [(0,)]

    await s.publish(
        acc.account_stream(no),
        acc.AccountOpened(
            account_no=no, payer_name="Ахметов Ерлан", address="г. Алматы, ул. Сатпаева, 30, кв. 5", residents=0,
            electric_stove=False, living_alone=True, tariff_option="flat", district_office_code="ROES-UNKNOWN",
            opened_on=date(year, 5, 1),
        ),
    )  # fmt: skip

    async def issued() -> bool:
        return await s.fetch("SELECT count(*) FROM receipts WHERE account_no = %s", (no,)) == [(1,)]

    await eventually(issued)
    await s.wait_applied("account-links", acc.account_links_stream(no), 1)
    bill = (await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}", headers=s.auth(user))).json()
    overpaid = D("5000.00") - estimate.total
    assert (bill["amount_due"], bill["overpayment"], bill["due_date"]) == (
        "0.00",
        f"{overpaid:.2f}",
        f"{year}-07-25",
    )
    assert bill["front"]["money"]["closing_balance"] == f"{-overpaid:.2f}"
    assert bill["front"]["meter"]["estimated"] is True and bill["front"]["meter"]["previous"] is None
    assert bill["front"]["qr"]["payload"].split("|")[3] == "Sum=0"
    assert bill["back"]["your_limits"] is None  # no residents
    assert bill["back"]["district_office"]["name"] is None  # not known (yet): the bill still prints
    # No renderer runs here: the PDF waits in the queue, and the first download renders it (the same code)
    # and takes it off the queue.
    queued = "SELECT count(*) FROM pdf_renders WHERE receipt_id = %s AND priority = 0"  # no e-bill
    assert await s.fetch(queued, (uuid.UUID(bill["receipt_id"]),)) == [(1,)]
    # Printed by the fallback engine, WeasyPrint, this time: the same template, the same content.
    before = rendering.engine_config()
    rendering.configure(dataclasses.replace(before, engine="weasyprint"))
    try:
        pdf = await s.api.get(f"/internal/v1/accounts/{no}/receipts/{period}.pdf", headers=s.auth(user))
    finally:
        rendering.configure(before)
    pages, text = pdf_text(pdf.content)
    assert pages == 2 and no in text and "Переплата" in text and money_text(overpaid) in text
    assert "WeasyPrint" in str(pypdf.PdfReader(io.BytesIO(pdf.content)).metadata["/Producer"])
    assert_fonts_embedded(pdf.content)
    assert await s.fetch(
        "SELECT count(*) FROM pdf_renders WHERE receipt_id = %s", (uuid.UUID(bill["receipt_id"]),)
    ) == [(0,)]


async def test_a_render_that_fails_is_retried_then_given_up_and_never_blocks_the_queue(receipts: Any) -> None:
    """Four bills queued together: one whose snapshot can't render (a template field is missing), three fine.
    The renderer claims them as one batch: the three are printed as one document and split, the bad one
    fails alone and is retried, then given up. (Other bills may be in the queue too: the harness issues
    whatever complete periods other tests publish.)"""
    s = receipts
    good = other_bills(s, 3)
    [bad] = other_bills(s, 1)
    del bad["front"]["meter"]
    for i, snapshot in enumerate([good[0], bad, *good[1:]]):
        await insert_bill(s, snapshot, priority=1, later_s=i)
    batched = PDFS_BATCHED._value.get()
    s.start_renderer()  # in this process's render thread; batches of RECEIPTS_PDF_BATCH (10)
    state = (
        "SELECT attempts, failed_at IS NOT NULL, last_error LIKE %s FROM pdf_renders WHERE receipt_id = %s"
    )
    await s.wait(state, ("%meter%", bad["receipt_id"]), [(2, True, True)], timeout_s=300)  # max_attempts = 2
    ids = [uuid.UUID(g["receipt_id"]) for g in good]
    await s.wait(
        "SELECT count(*) FROM receipt_pdfs WHERE receipt_id = ANY(%s)", (ids,), [(3,)], timeout_s=300
    )
    assert PDFS_BATCHED._value.get() - batched >= 3  # printed together (with any other queued bills)
    for snapshot in good:
        [(pdf,)] = await s.fetch(
            "SELECT pdf FROM receipt_pdfs WHERE receipt_id = %s", (snapshot["receipt_id"],)
        )
        pages, text = pdf_text(bytes(pdf))
        assert pages == 2 and snapshot["account_no"] in text
        assert not any(g["account_no"] in text for g in good if g is not snapshot)
        assert_fonts_embedded(bytes(pdf))
    assert await s.fetch("SELECT count(*) FROM pdf_renders WHERE receipt_id = ANY(%s)", (ids,)) == [(0,)]
    assert await s.fetch("SELECT count(*) FROM receipt_pdfs WHERE receipt_id = %s", (bad["receipt_id"],)) == [
        (0,)
    ]
    await s.stop_renderers()


async def test_the_renderer_waits_while_the_rest_of_the_machine_is_busy(receipts: Any) -> None:
    """`render_yield_above_cores`: before a batch, while the rest of the machine uses more CPU than that, the
    renderer waits; it renders once the others calm down, or after `render_yield_max_s` however busy they
    stay. (The load is ours to set here; `tests/unit/test_receipts_machine_load.py` measures the real one.)"""
    s = receipts
    await s.stop_renderers()  # only the renderers of this test claim bills
    first, second = other_bills(s, 2)
    await insert_bill(s, first, priority=1)
    others = [1.5]  # cores
    patient = s.settings.model_copy(
        update={"render_yield_above_cores": 0.6, "render_yield_check_s": 0.05, "render_yield_max_s": 3600.0}
    )
    renderer = PdfRenderer(s.harness.pool, patient, processes=0, others_load=lambda: others[0])
    yields = RENDER_YIELDS._value.get()
    task = asyncio.create_task(renderer.run())
    stored = "SELECT count(*) FROM receipt_pdfs WHERE receipt_id = %s"
    try:

        async def waited_a_while() -> bool:
            return RENDER_YIELDS._value.get() - yields >= 20

        await eventually(waited_a_while)
        assert await s.fetch(stored, (uuid.UUID(first["receipt_id"]),)) == [(0,)]  # still waiting
        others[0] = 0.2
        await s.wait(stored, (uuid.UUID(first["receipt_id"]),), [(1,)], timeout_s=300)
    finally:
        renderer.stop()
        await task

    # Busy for good: each batch waits render_yield_max_s, then renders anyway (a backlog still drains).
    await insert_bill(s, second, priority=1)
    others[0] = 1.5
    bounded = patient.model_copy(update={"render_yield_max_s": 0.5})
    renderer = PdfRenderer(s.harness.pool, bounded, processes=0, others_load=lambda: others[0])
    yields = RENDER_YIELDS._value.get()
    task = asyncio.create_task(renderer.run())
    try:
        await s.wait(stored, (uuid.UUID(second["receipt_id"]),), [(1,)], timeout_s=300)
        assert RENDER_YIELDS._value.get() - yields >= 10  # it did wait first (0.5 s in checks of 0.05 s)
    finally:
        renderer.stop()
        await task
