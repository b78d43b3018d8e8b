"""The e-bill's e-mail text (subject and plain-text body) in the subscriber's language: ru (default), kk, en.

The bill itself (the attached PDF) is always the Russian one the supplier issues.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from receipts.domain import formatting, periods

_KK_MONTHS = ("қаңтар", "ақпан", "наурыз", "сәуір", "мамыр", "маусым", "шілде", "тамыз", "қыркүйек", "қазан",
              "қараша", "желтоқсан")  # fmt: skip
_EN_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December")  # fmt: skip


@dataclass(frozen=True, slots=True)
class MailText:
    subject: str
    body: str
    attachment_name: str


def compose(snapshot: Mapping[str, Any], language: str = "ru") -> MailText:
    no = str(snapshot["account_no"])
    period = str(snapshot["period"])
    year, month = periods.parse(period)
    amount = formatting.number(snapshot["amount_due"])
    overpayment = str(snapshot.get("overpayment", "0.00"))
    due = formatting.ru_date(snapshot["due_date"])
    attachment = f"kvitanciya_{no}_{period}.pdf"
    has_overpayment = overpayment not in ("0.00", "0")
    if language == "kk":
        when = f"{year} жылғы {_KK_MONTHS[month - 1]}"
        money = (
            f"Артық төлем: {formatting.number(overpayment)} ₸, төлеуге: 0,00 ₸."
            if has_overpayment
            else f"Төлеуге: {amount} ₸, {due} дейін."
        )
        return MailText(
            f"{when} айына шот-түбіртек — дербес шот {no}",
            "Сәлеметсіз бе!\n\n"
            f"Қосымшада — «АлматыЭнергоСбыт» АҚ-ның {no} дербес шоты бойынша {when} айына шот-түбіртегі.\n"
            f"{money}\n\n"
            "Жеке кабинетте, банк қосымшасында түбіртектегі QR-код арқылы немесе банк бөлімшелерінде төлей аласыз.\n\n"
            "Сіз бұл хатты жеке кабинетте электрондық түбіртекке жазылғандықтан алдыңыз. "
            "Жазылымнан сол жерде бас тартуға болады.\n",
            attachment,
        )
    if language == "en":
        when = f"{_EN_MONTHS[month - 1]} {year}"
        money = (
            f"Overpayment: {formatting.number(overpayment)} KZT; nothing to pay."
            if has_overpayment
            else f"Amount due: {amount} KZT by {due}."
        )
        return MailText(
            f"Your electricity bill for {when}, account {no}",
            "Hello,\n\n"
            f"Attached is the bill of JSC AlmatyEnergoSbyt for {when}, personal account {no}.\n"
            f"{money}\n\n"
            "You can pay in your personal account, in your bank's app with the QR code on the bill, or at any bank.\n\n"
            "You receive this e-mail because you subscribed to e-bills in your personal account; "
            "you can unsubscribe there.\n",
            attachment,
        )
    when = f"{periods.label(period)} г."
    money = (
        f"Переплата: {formatting.number(overpayment)} ₸, к оплате 0,00 ₸."
        if has_overpayment
        else f"К оплате: {amount} ₸ до {due}."
    )
    return MailText(
        f"Счёт-квитанция за {when} — лицевой счёт {no}",
        "Здравствуйте!\n\n"
        f"Во вложении — счёт-квитанция АО «АлматыЭнергоСбыт» за {when} по лицевому счёту {no}.\n"
        f"{money}\n\n"
        "Оплатить можно в личном кабинете, в приложении банка по QR-коду на квитанции или в отделениях банков.\n\n"
        "Вы получили это письмо, потому что подписались на электронную квитанцию в личном кабинете. "
        "Отписаться можно там же.\n",
        attachment,
    )
