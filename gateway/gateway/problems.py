"""Errors as `application/problem+json` (RFC 9457) in the caller's language.

Every problem has `type`, `title`, `status`, `detail`, a stable machine `code` and `errors`
(`[{field, message, code?}]`, empty unless a field is at fault). The services answer in Russian with a
stable `code`; the gateway keeps their Russian texts (which may carry details such as dates) and
translates by `code` into Kazakh and English, falling back to a text per status for unknown codes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi.responses import Response

from gateway.adapters.upstream import PROBLEM_JSON, UpstreamProblem
from gateway.i18n import N_, Language, catalogs

_CYRILLIC = re.compile(r"[А-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүҺһІі]")

_LINK_INVALID = (N_("Ссылка недействительна"), N_("Ссылка недействительна. Запросите новую"))
_LINK_USED = (N_("Ссылка недействительна"), N_("Ссылка уже была использована. Запросите новую"))
_LINK_EXPIRED = (N_("Ссылка недействительна"), N_("Срок действия ссылки истёк. Запросите новую"))
_READING = N_("Показание не принято")
_RATING = N_("Расчёт невозможен")

# code -> (title, detail): Russian message ids, translated in the catalogs.
PROBLEM_TEXTS: dict[str, tuple[str, str]] = {
    # the gateway's own
    "not_authenticated": (N_("Требуется вход"), N_("Войдите в личный кабинет.")),
    "unauthorized": (N_("Требуется вход"), N_("Войдите в личный кабинет.")),
    "invalid_token": (N_("Требуется вход"), N_("Сеанс недействителен. Войдите снова.")),
    "session_revoked": (N_("Требуется вход"), N_("Сеанс завершён. Войдите снова.")),
    "user_not_found": (N_("Требуется вход"), N_("Учётная запись не найдена. Войдите снова.")),
    "account_not_found": (N_("Лицевой счёт не найден"), N_("Лицевой счёт не найден среди ваших счетов.")),
    "not_found": (N_("Не найдено"), N_("Запрошенные данные не найдены.")),
    "http_404": (N_("Не найдено"), N_("Запрошенные данные не найдены.")),
    "method_not_allowed": (
        N_("Метод не поддерживается"),
        N_("Этот метод не поддерживается для данного адреса."),
    ),
    "forbidden": (N_("Доступ запрещён"), N_("Недостаточно прав.")),
    "validation_error": (N_("Ошибка в данных запроса"), N_("Проверьте заполнение полей.")),
    "validation_failed": (N_("Ошибка в данных запроса"), N_("Проверьте заполнение полей.")),
    "bad_request": (N_("Некорректный запрос"), N_("Запрос не может быть обработан.")),
    "payload_too_large": (
        N_("Слишком большой запрос"),
        N_("Размер запроса превышает допустимый. Сократите введённые данные."),
    ),
    "unsupported_media_type": (
        N_("Неподдерживаемый формат"),
        N_("Тело запроса должно быть в формате JSON (Content-Type: application/json)."),
    ),
    "invalid_encoding": (
        N_("Некорректный запрос"),
        N_("Тело запроса должно быть в кодировке UTF-8."),
    ),
    "service_unavailable": (
        N_("Сервис временно недоступен"),
        N_("Сервис «%(service)s» временно недоступен. Повторите попытку позже."),
    ),
    "too_many_requests": (
        N_("Слишком много попыток"),
        N_("Слишком много попыток. Повторите через %(minutes)s мин."),
    ),
    "too_many_attempts": (
        N_("Слишком много попыток"),
        N_("Слишком много попыток. Повторите через %(minutes)s мин."),
    ),
    "idempotency_key_reused": (
        N_("Повторный ключ запроса"),
        N_("Этот Idempotency-Key уже использован для другого запроса."),
    ),
    "idempotency_in_progress": (
        N_("Запрос уже выполняется"),
        N_("Запрос с этим Idempotency-Key ещё выполняется. Повторите попытку позже."),
    ),
    "invalid_idempotency_key": (
        N_("Некорректный ключ запроса"),
        N_("Idempotency-Key должен содержать от 1 до 200 видимых символов."),
    ),
    "internal_error": (N_("Внутренняя ошибка"), N_("Произошла ошибка. Попробуйте позже.")),
    "busy": (N_("Повторите попытку"), N_("Данные сейчас изменяются. Повторите попытку.")),
    # identity
    "email_taken": (
        N_("Адрес уже используется"),
        N_("Этот адрес e-mail уже используется другой учётной записью"),
    ),
    "invalid_credentials": (N_("Вход не выполнен"), N_("Неверный e-mail или пароль")),
    "invalid_refresh_token": (
        N_("Сеанс недействителен"),
        N_("Сеанс завершён или недействителен. Войдите снова"),
    ),
    "refresh_token_reused": (
        N_("Сеанс недействителен"),
        N_("Сеанс завершён из соображений безопасности. Войдите снова"),
    ),
    "password_reset_token_invalid": _LINK_INVALID,
    "password_reset_token_used": _LINK_USED,
    "password_reset_token_expired": _LINK_EXPIRED,
    "email_change_token_invalid": _LINK_INVALID,
    "email_change_token_used": _LINK_USED,
    "email_change_token_expired": _LINK_EXPIRED,
    "wrong_current_password": (N_("Неверный текущий пароль"), N_("Текущий пароль указан неверно")),
    "password_unchanged": (N_("Пароль не изменён"), N_("Новый пароль должен отличаться от текущего")),
    "concurrent_change": (
        N_("Данные изменились"),
        N_("Данные изменились одновременно с запросом. Повторите попытку"),
    ),
    "email_unchanged": (N_("Запрос отклонён"), N_("Новый адрес совпадает с текущим")),
    # accounts
    "account_link_failed": (
        N_("Не удалось добавить лицевой счёт"),
        N_("Проверьте номер лицевого счёта, месяц и сумму последнего платежа."),
    ),
    # calculator
    "reading_conflict": (
        N_("Конфликт"),
        N_("Показания по лицевому счёту изменились во время обработки; повторите попытку"),
    ),
    "no_meter": (
        N_("Конфликт"),
        N_("На лицевом счёте не зарегистрирован счётчик; обратитесь в контакт-центр"),
    ),
    "date_in_future": (_READING, N_("Дата показания ещё не наступила")),
    "not_after_previous": (_READING, N_("Дата показания должна быть позже даты предыдущего показания")),
    "before_meter_install": (_READING, N_("Дата показания раньше даты установки счётчика")),
    "exceeds_meter_capacity": (_READING, N_("Показание не помещается в разрядность счётчика")),
    "too_many_decimals": (_READING, N_("Показание содержит более двух знаков после запятой")),
    "not_a_number": (_READING, N_("Показание должно быть числом")),
    "negative": (_READING, N_("Показание не может быть отрицательным")),
    "less_than_previous": (_READING, N_("Показание меньше предыдущего")),
    "less_than_initial_reading": (_READING, N_("Показание меньше начального показания счётчика")),
    "replacement_inconsistent": (
        _READING,
        N_("Данные о замене счётчика противоречивы; обратитесь в контакт-центр"),
    ),
    "meter_serial_mismatch": (
        _READING,
        N_("Показание снято не с того счётчика, что установлен на лицевом счёте"),
    ),
    "implausible_consumption": (
        N_("Подтвердите показание"),
        N_(
            "Расход более чем в 3 раза превышает средний расход за последние три месяца. "
            "Проверьте показание; если оно верно, подтвердите его"
        ),
    ),
    "no_tariff_in_force": (_RATING, N_("Нет тарифа, действующего на эту дату")),
    "no_vat_in_force": (_RATING, N_("Нет ставки НДС, действующей на эту дату")),
    "invalid_attributes": (_RATING, N_("Некорректные параметры лицевого счёта")),
    "invalid_replacement": (_RATING, N_("Некорректные данные о замене счётчика")),
    "invalid_consumption": (_RATING, N_("Некорректный расход")),
    # ledger and receipts
    "invalid_period": (
        N_("Ошибка в данных запроса"),
        N_("Неверный период. Укажите месяц в формате ГГГГ-ММ."),
    ),
    "period_range_invalid": (N_("Ошибка в данных запроса"), N_("Начало периода позже его конца.")),
    "invalid_range": (N_("Ошибка в данных запроса"), N_("Начало периода позже его конца.")),
    "invalid_date": (
        N_("Ошибка в данных запроса"),
        N_("Неверная дата. Укажите дату в формате ГГГГ-ММ-ДД между 1900 и 2199 годом."),
    ),
    "range_too_long": (N_("Ошибка в данных запроса"), N_("Период слишком длинный. Выберите период короче.")),
    "service_not_found": (N_("Не найдено"), N_("Услуга не найдена.")),
    "receipt_not_found": (N_("Не найдено"), N_("Квитанция за этот период не найдена.")),
    "ebill_not_subscribed": (N_("Не найдено"), N_("Подписка на электронную квитанцию не оформлена.")),
}

# Field-level messages by violation code (identity's and calculator's codes, pydantic's error types).
VIOLATION_TEXTS: dict[str, str] = {
    "email_required": N_("Укажите адрес e-mail"),
    "email_too_long": N_("Адрес e-mail слишком длинный"),
    "email_invalid": N_("Неверный формат адреса e-mail"),
    "email_taken": N_("Этот адрес e-mail уже используется другой учётной записью"),
    "email_unchanged": N_("Новый адрес совпадает с текущим"),
    "full_name_too_short": N_("ФИО слишком короткое"),
    "full_name_too_long": N_("ФИО слишком длинное"),
    "full_name_invalid_characters": N_("ФИО может содержать только буквы, пробелы, дефисы и апострофы"),
    "full_name_invalid_format": N_("Дефис и апостроф допустимы только между буквами"),
    "password_too_short": N_("Пароль должен содержать не менее 10 символов"),
    "password_too_long": N_("Пароль должен содержать не более 128 символов"),
    "password_single_character": N_("Пароль не может состоять из одного повторяющегося символа"),
    "password_equals_email": N_("Пароль не должен совпадать с адресом e-mail"),
    "password_confirmation_mismatch": N_("Пароли не совпадают"),
    "wrong_current_password": N_("Текущий пароль указан неверно"),
    "password_unchanged": N_("Новый пароль должен отличаться от текущего"),
    "nothing_to_change": N_("Укажите, что изменить"),
    "missing": N_("Обязательное поле"),
    "string_too_short": N_("Обязательное поле"),
    "string_too_long": N_("Слишком длинное значение"),
    "string_type": N_("Ожидается строка"),
    "string_pattern_mismatch": N_("Неверный формат"),
    "literal_error": N_("Недопустимое значение"),
    "enum": N_("Недопустимое значение"),
    "json_invalid": N_("Неверный формат JSON"),
    "model_attributes_type": N_("Ожидается объект JSON"),
    "dict_type": N_("Ожидается объект JSON"),
    "model_type": N_("Ожидается объект JSON"),
    "list_type": N_("Ожидается список"),
    "int_parsing": N_("Ожидается целое число"),
    "int_type": N_("Ожидается целое число"),
    "bool_parsing": N_("Ожидается значение true или false"),
    "bool_type": N_("Ожидается значение true или false"),
    "date_from_datetime_parsing": N_("Неверная дата, ожидается ГГГГ-ММ-ДД"),
    "date_parsing": N_("Неверная дата, ожидается ГГГГ-ММ-ДД"),
    "date_type": N_("Неверная дата, ожидается ГГГГ-ММ-ДД"),
    "greater_than_equal": N_("Значение слишком мало"),
    "greater_than": N_("Значение слишком мало"),
    "less_than_equal": N_("Значение слишком велико"),
    "less_than": N_("Значение слишком велико"),
    "value_error": N_("Недопустимое значение"),
    "decimal_parsing": N_("Ожидается сумма, например 1234.50"),
    "decimal_type": N_("Ожидается сумма, например 1234.50"),
    "extra_forbidden": N_("Лишнее поле"),
    "control_characters": N_("Поле содержит недопустимые управляющие символы"),
    "blank": N_("Поле не может быть пустым"),
    "decimal_max_places": N_("Не более двух знаков после запятой"),
    "decimal_max_digits": N_("Слишком большое число"),
    "decimal_whole_digits": N_("Слишком большое число"),
    "finite_number": N_("Ожидается число"),
    "date_from_datetime_inexact": N_("Неверная дата, ожидается ГГГГ-ММ-ДД"),
    "date_past": N_("Дата должна быть в прошлом"),
    "date_out_of_range": N_("Дата должна быть между 01.01.1900 и 31.12.2199"),
    "date_future": N_("Дата должна быть в будущем"),
    "missing_argument": N_("Обязательное поле"),
    "float_parsing": N_("Ожидается число"),
    "float_type": N_("Ожидается число"),
    "int_from_float": N_("Ожидается целое число"),
    "too_short": N_("Слишком мало элементов"),
    "too_long": N_("Слишком много элементов"),
    "uuid_parsing": N_("Неверный идентификатор"),
    "url_parsing": N_("Неверный адрес"),
    "string_sub_type": N_("Ожидается строка"),
    "string_unicode": N_("Поле содержит недопустимые символы"),
}
for _code in (
    "date_in_future",
    "not_after_previous",
    "before_meter_install",
    "exceeds_meter_capacity",
    "too_many_decimals",
    "not_a_number",
    "negative",
    "less_than_previous",
    "less_than_initial_reading",
    "replacement_inconsistent",
    "meter_serial_mismatch",
    "implausible_consumption",
):
    VIOLATION_TEXTS[_code] = PROBLEM_TEXTS[_code][1]

STATUS_TEXTS: dict[int, tuple[str, str]] = {
    400: PROBLEM_TEXTS["bad_request"],
    401: PROBLEM_TEXTS["not_authenticated"],
    403: PROBLEM_TEXTS["forbidden"],
    404: PROBLEM_TEXTS["not_found"],
    405: PROBLEM_TEXTS["method_not_allowed"],
    413: PROBLEM_TEXTS["payload_too_large"],
    415: PROBLEM_TEXTS["unsupported_media_type"],
    409: (N_("Конфликт"), N_("Данные изменились. Повторите попытку.")),
    422: PROBLEM_TEXTS["validation_error"],
    429: (N_("Слишком много попыток"), N_("Слишком много попыток. Повторите позже.")),
    503: (N_("Сервис временно недоступен"), N_("Часть данных сейчас недоступна. Повторите попытку позже.")),
}
GENERIC_FIELD_TEXT = N_("Недопустимое значение")

SERVICE_NAMES: dict[str, str] = {
    "identity": N_("Учётные записи"),
    "accounts": N_("Лицевые счета"),
    "ledger": N_("Начисления и платежи"),
    "calculator": N_("Показания и расчёты"),
    "receipts": N_("Квитанции"),
}


class ApiProblem(Exception):
    """A problem the gateway answers itself; texts are looked up by `code` (or given as message ids)."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        params: dict[str, Any] | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.params = params or {}
        self.errors = errors or []
        self.headers = headers or {}


def _texts(code: str, status: int) -> tuple[str, str]:
    return PROBLEM_TEXTS.get(code) or STATUS_TEXTS.get(status) or STATUS_TEXTS[400]


def _translate(message: str, lang: Language, params: dict[str, Any]) -> str:
    text = catalogs().gettext(message, lang)
    if params:
        try:
            return text % params
        except (KeyError, TypeError, ValueError):
            return text
    return text


def problem_body(
    status: int,
    code: str,
    lang: Language,
    *,
    params: dict[str, Any] | None = None,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    title, detail = _texts(code, status)
    return {
        "type": f"urn:lk:problem:{code}",
        "title": _translate(title, lang, params or {}),
        "status": status,
        "detail": _translate(detail, lang, params or {}),
        "code": code,
        "errors": errors or [],
    }


def field_message(code: str | None, original: str | None, lang: Language) -> str:
    """A field's message: the service's own Russian text in Russian; by code (or generic) otherwise."""
    if lang == "ru" and original and _CYRILLIC.search(original):
        return original
    return catalogs().gettext(VIOLATION_TEXTS.get(code or "", GENERIC_FIELD_TEXT), lang)


def retry_minutes(headers: dict[str, str]) -> int:
    try:
        seconds = int(next((v for k, v in headers.items() if k.lower() == "retry-after"), "60"))
    except ValueError:
        seconds = 60
    return max(1, -(-seconds // 60))


def localize_upstream(problem: UpstreamProblem, lang: Language) -> dict[str, Any]:
    """A service's problem, in `lang`: Russian texts kept, others translated by code."""
    body = problem.body
    status = problem.status
    code = problem.code or {401: "not_authenticated", 404: "not_found", 422: "validation_error"}.get(
        status, f"http_{status}"
    )
    params: dict[str, Any] = {"minutes": retry_minutes(problem.headers)} if status == 429 else {}
    localized = problem_body(status, code, lang, params=params)
    if lang == "ru":
        for key in ("title", "detail"):
            original = body.get(key)
            if isinstance(original, str) and _CYRILLIC.search(original):
                localized[key] = original
    errors = []
    for item in body.get("errors") or []:
        if not isinstance(item, dict):
            continue
        item_code = item.get("code")
        entry = {
            "field": str(item.get("field", "")),
            "message": field_message(item_code, item.get("message"), lang),
        }
        if item_code:
            entry["code"] = str(item_code)
        errors.append(entry)
    localized["errors"] = errors
    return localized


def problem_response(body: dict[str, Any], lang: Language, headers: dict[str, str] | None = None) -> Response:
    all_headers = {"Cache-Control": "no-store", "Content-Language": lang, **(headers or {})}
    return Response(
        orjson.dumps(body), status_code=int(body["status"]), media_type=PROBLEM_JSON, headers=all_headers
    )


def service_name(service: str, lang: Language) -> str:
    return catalogs().gettext(SERVICE_NAMES.get(service, service), lang)
