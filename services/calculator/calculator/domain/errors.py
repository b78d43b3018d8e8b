"""Domain errors of the calculator.

Every error carries a stable machine `code` and the `params` needed to format a message in the
user's language; `message_ru` is the Russian default. The codes of the reading rules are shared with
`readings.ReadingProblem` so a rejected rating and a rejected submitted reading say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Russian default messages by code. Placeholders are filled from `params` (all strings).
MESSAGES_RU: Mapping[str, str] = MappingProxyType(
    {
        # catalog
        "no_tariff_in_force": "Нет тарифа, действующего на {day}",
        "no_vat_in_force": "Нет ставки НДС, действующей на {day}",
        "invalid_catalog": "Некорректный тарифный справочник: {detail}",
        # inputs of rating
        "invalid_attributes": "Некорректные параметры лицевого счёта: {detail}",
        "invalid_replacement": "Некорректные данные о замене счётчика: {detail}",
        "invalid_consumption": "Некорректный расход: {detail}",
        # reading rules (RATING.md §4-§5), shared with readings.ReadingProblem
        "date_in_future": "Дата показания {reading_date} ещё не наступила",
        "not_after_previous": (
            "Дата показания {reading_date} должна быть позже даты предыдущего показания {previous_date}"
        ),
        "before_meter_install": (
            "Дата показания {reading_date} раньше даты установки счётчика {installed_on}"
        ),
        "exceeds_meter_capacity": (
            "Показание {value} не помещается в счётчик с {digits} целыми разрядами "
            "(наибольшее возможное показание {max_value})"
        ),
        "too_many_decimals": "Показание {value} содержит более двух знаков после запятой",
        "not_a_number": "Показание должно быть числом",
        "negative": "Показание {value} не может быть отрицательным",
        "less_than_previous": "Показание меньше предыдущего ({previous_value})",
        "less_than_initial_reading": (
            "Показание {value} меньше начального показания счётчика ({initial_reading})"
        ),
        "replacement_inconsistent": (
            "Конечное показание снятого счётчика ({old_final_reading}) меньше предыдущего показания "
            "({previous_value}); обратитесь в контакт-центр"
        ),
        "meter_serial_mismatch": (
            "Показание снято со счётчика {meter_serial}, а на лицевом счёте установлен счётчик {current_serial}"
        ),
        "implausible_consumption": (
            "Расход {daily_kwh} кВт·ч в сутки более чем в 3 раза превышает средний расход за последние "
            "три оплаченных месяца ({average_daily_kwh} кВт·ч в сутки). Проверьте показание; если оно "
            "верно, подтвердите его"
        ),
    }
)


def message_ru(code: str, params: Mapping[str, str]) -> str:
    """The Russian default message of `code`, formatted with `params` (unknown codes fall back to the code)."""
    template = MESSAGES_RU.get(code)
    if template is None:
        return code
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


class DomainError(Exception):
    """Base of the calculator's domain errors: a stable `code` plus string `params`."""

    def __init__(self, code: str, **params: str) -> None:
        self.code = code
        self.params: dict[str, str] = dict(params)
        super().__init__(f"{code}: {self.message_ru}")

    @property
    def message_ru(self) -> str:
        return message_ru(self.code, self.params)


class RatingError(DomainError):
    """The inputs cannot be rated (RATING.md §4): bad dates, a reading lower than the previous one, ..."""


class CatalogError(RatingError):
    """The tariff catalog has no row in force on a day, or is malformed."""
