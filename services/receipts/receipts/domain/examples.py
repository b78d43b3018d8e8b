"""An example bill's facts (a tiered account, one month), for template previews, tests and benchmarks."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from receipts.domain.balances import Entry, period_table
from receipts.domain.bill import (
    AccountFacts,
    AttributeChange,
    BillFacts,
    CorrectionFacts,
    MeterFacts,
    OfficeFacts,
    PaymentFacts,
    TariffRowFacts,
    VatFacts,
)

D = Decimal

REFERENCE: dict[str, Any] = {
    "supplier": {
        "name": "АО «АлматыЭнергоСбыт»",
        "bin": "040340005741",
        "address": "050012, г. Алматы, ул. Толе би, 69",
        "phone": "+7 (727) 356-99-99",
        "email": "info@esb.kz",
        "website": "www.esb.kz",
        "bank": "АО «Народный Банк Казахстана»",
        "iban": "KZ226010002000000001",
        "bic": "HSBKKZKX",
    },
    "contact_center": {
        "phone": "+7 (727) 356-99-99",
        "email": "call-center@esb.kz",
        "hours": "ежедневно с 8:00 до 20:00",
        "address": "г. Алматы, ул. Толе би, 69",
    },
    "how_to_pay": [
        "В личном кабинете и мобильных приложениях банков по номеру лицевого счёта или по QR-коду с лицевой стороны.",
        "В отделениях банков второго уровня и АО «Казпочта», в терминалах и банкоматах.",
        "В кассах районных отделений АлматыЭнергоСбыт (РОЭС), адрес и часы работы вашего отделения указаны ниже.",
        "Оплатите до 25 числа месяца, следующего за расчётным; платёж зачисляется в течение 1–3 рабочих дней.",
    ],
    "tiers_explained": [
        "Дифференцированный тариф делит потребление месяца на три ступени. Каждая ступень оплачивается по своей"
        " цене: чем больше потребление, тем дороже киловатт-час сверх нормы.",
        "Нормы указаны на одного постоянно проживающего за месяц (30,5 дня); для вашего счёта они умножаются на"
        " число проживающих и пересчитываются пропорционально дням расчётного периода.",
        "I ступень — потребление в пределах первой нормы, II ступень — сверх первой нормы до второй,"
        " III ступень — всё, что сверх второй нормы.",
        "На единый тариф переводятся счета без зарегистрированных проживающих; переход между тарифами — по"
        " заявлению в РОЭС или в личном кабинете.",
    ],
    "notices": [
        "Показания принимаются с 20 по 25 число в личном кабинете, мобильном приложении и по телефону"
        " Контакт-центра.",
        "Если показания не переданы, начисление производится по среднемесячному потреблению с последующим"
        " перерасчётом по фактическим показаниям.",
        "Сообщайте об изменении числа проживающих в районное отделение в течение 10 дней.",
    ],
}

NORMS: list[dict[str, Any]] = [
    {"electric_stove": stove, "living_alone": alone, "tier1_kwh": t1, "tier2_kwh": t2}
    for stove, alone, t1, t2 in [
        (False, False, "90", "160"),
        (True, False, "115", "190"),
        (False, True, "115", "160"),
        (True, True, "140", "190"),
    ]
]


def example_charge(account_no: str = "100200300401", period: str = "2025-03") -> dict[str, Any]:
    line = {"from_date": "2025-02-20", "to_date": "2025-03-20"}
    return {
        "charge_id": "c1",
        "account_no": account_no,
        "service_code": "electricity",
        "period": period,
        "previous": {"date": "2025-02-20", "value": "12040.00"},
        "current": {"date": "2025-03-20", "value": "12520.50"},
        "days": 28,
        "consumption_kwh": "480.50",
        "tariff_option_applied": "tiered",
        "lines": [
            {
                **line,
                "tier": "1",
                "limit_kwh": "211.15",
                "kwh": "211.15",
                "rate": "14.87",
                "amount": "3139.80",
            },
            {
                **line,
                "tier": "2",
                "limit_kwh": "348.85",
                "kwh": "137.70",
                "rate": "19.63",
                "amount": "2703.05",
            },
            {**line, "tier": "3", "limit_kwh": None, "kwh": "131.65", "rate": "24.54", "amount": "3230.69"},
        ],
        "net_total": "9073.54",
        "vat": "1088.82",
        "total": "10162.36",
        "estimated": False,
    }


def example_facts(account_no: str = "100200300401", receipt_id: uuid.UUID | None = None) -> BillFacts:
    """March 2025 of a tiered account with 2 residents and an electric stove: opening 0.00, accrued 10 162.36,
    a correction of −120.00, paid 5 000.00, so 5 042.36 to pay."""
    entries = [
        Entry("opening", "2025-01", D("350.25")),
        Entry("accrual", "2025-02", D("8000.00")),
        Entry("payment", "2025-02", D("8350.25")),
        Entry("accrual", "2025-03", D("10162.36")),
        Entry("payment", "2025-03", D("5000.00")),
        Entry("correction", "2025-03", D("-120.00")),
    ]
    opened = date(2024, 1, 15)
    return BillFacts(
        receipt_id=receipt_id or uuid.UUID(int=1),
        issued_at=datetime(2025, 4, 1, 3, 0, tzinfo=UTC),
        period="2025-03",
        account=AccountFacts(
            account_no,
            "г. Алматы, мкр. Самал-2, д. 58, кв. 14",
            True,
            False,
            "ROES-1",
            opened,
            {
                "payer_name": [AttributeChange(opened, 1, "Сейтказиева Айгуль Маратовна")],
                "residents": [AttributeChange(opened, 1, "2")],
                "tariff_option": [AttributeChange(opened, 1, "tiered")],
            },
        ),
        charges=[example_charge(account_no)],
        figures={"electricity": period_table(entries)},
        payments=[PaymentFacts("p1", date(2025, 3, 5), D("5000.00"), "Halyk Bank")],
        corrections=[CorrectionFacts("k1", D("-120.00"), "Перерасчёт по заявлению")],
        tariffs=[TariffRowFacts(date(2018, 3, 1), D("16.36"), D("14.87"), D("19.63"), D("24.54"), NORMS)],
        vat_rates=[VatFacts(date(2009, 1, 1), D("0.12"))],
        meters=[MeterFacts("CE-0001", 6, opened, None)],
        office=OfficeFacts(
            "ROES-1",
            "Алмалинский РОЭС",
            "г. Алматы, ул. Жибек Жолы, 135",
            "+7 (727) 222-33-44",
            "пн–пт 9:00–18:00",
        ),
        reference=REFERENCE,
    )
