"""Reference data of the simulated back-office: Almaty's district offices and streets, names, banks,
meters, and the tariff catalog of RATING.md §2–§3.

Everything here is plain data; the generator draws from it with a seeded `random.Random`, so the order
of every list is part of the determinism (append, never reorder).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class DistrictOffice:
    code: str
    district: str
    address: str
    phone: str
    hours: str
    streets: tuple[str, ...]  # streets and microdistricts of the district (for account addresses)

    @property
    def name(self) -> str:
        return f"{self.district} РОЭС"


_WEEKDAYS = "Пн–Пт 09:00–18:00, перерыв 13:00–14:00"
_WITH_SATURDAY = "Пн–Пт 09:00–18:00, перерыв 13:00–14:00; Сб 09:00–13:00"

DISTRICT_OFFICES: tuple[DistrictOffice, ...] = (
    DistrictOffice(
        "01",
        "Алатауский",
        "г. Алматы, мкр. Шанырак-2, ул. Жанкожа батыра, 202",
        "+7 727 390 12 41",
        _WEEKDAYS,
        ("ул. Рыскулова", "ул. Бокейханова", "мкр. Шанырак-2", "мкр. Айгерим-1", "ул. Жанкожа батыра"),
    ),
    DistrictOffice(
        "02",
        "Алмалинский",
        "г. Алматы, ул. Толе би, 101",
        "+7 727 356 99 99",
        _WITH_SATURDAY,
        (
            "ул. Абая",
            "ул. Толе би",
            "ул. Сейфуллина",
            "ул. Жибек Жолы",
            "ул. Богенбай батыра",
            "ул. Айтеке би",
            "ул. Желтоксан",
            "ул. Муканова",
        ),
    ),
    DistrictOffice(
        "03",
        "Ауэзовский",
        "г. Алматы, мкр. Жетысу-2, д. 64",
        "+7 727 248 31 07",
        _WITH_SATURDAY,
        (
            "ул. Бауыржана Момышулы",
            "ул. Саина",
            "ул. Жубанова",
            "ул. Алтынсарина",
            "мкр. Аксай-4",
            "мкр. Мамыр-4",
            "мкр. Жетысу-2",
        ),
    ),
    DistrictOffice(
        "04",
        "Бостандыкский",
        "г. Алматы, ул. Тимирязева, 42",
        "+7 727 395 20 18",
        _WITH_SATURDAY,
        (
            "пр. Аль-Фараби",
            "ул. Тимирязева",
            "ул. Розыбакиева",
            "ул. Жандосова",
            "ул. Сатпаева",
            "ул. Манаса",
            "мкр. Орбита-3",
            "мкр. Коктем-1",
        ),
    ),
    DistrictOffice(
        "05",
        "Жетысуский",
        "г. Алматы, ул. Бекмаханова, 96",
        "+7 727 233 40 56",
        _WEEKDAYS,
        ("ул. Райымбека", "ул. Кудерина", "ул. Бекмаханова", "мкр. Айнабулак-3", "мкр. Кулагер"),
    ),
    DistrictOffice(
        "06",
        "Медеуский",
        "г. Алматы, ул. Кунаева, 77",
        "+7 727 261 72 30",
        _WITH_SATURDAY,
        (
            "пр. Достык",
            "ул. Кабанбай батыра",
            "ул. Курмангазы",
            "ул. Пушкина",
            "ул. Кунаева",
            "ул. Зенкова",
            "мкр. Самал-2",
        ),
    ),
    DistrictOffice(
        "07",
        "Наурызбайский",
        "г. Алматы, мкр. Шугыла, ул. Жуалы, 12",
        "+7 727 338 05 63",
        _WEEKDAYS,
        ("мкр. Шугыла", "мкр. Калкаман", "ул. Жуалы", "мкр. Таусамалы"),
    ),
    DistrictOffice(
        "08",
        "Турксибский",
        "г. Алматы, ул. Суюнбая, 159",
        "+7 727 229 14 88",
        _WEEKDAYS,
        ("ул. Суюнбая", "ул. Майлина", "ул. Шолохова", "ул. Палладина", "мкр. Жулдыз-1"),
    ),
)

# --- people -------------------------------------------------------------------------------------------
KAZAKH_MALE = (
    "Ерлан", "Нурлан", "Асхат", "Айдос", "Даурен", "Бауыржан", "Серик", "Ержан", "Мирас", "Арман",
    "Талгат", "Жандос", "Канат", "Бекзат", "Алибек", "Ернар", "Темирлан", "Санжар",
)  # fmt: skip
KAZAKH_FEMALE = (
    "Айгерим", "Динара", "Жанар", "Гульмира", "Асель", "Айжан", "Салтанат", "Мадина", "Акмарал",
    "Жанна", "Камила", "Дана", "Сауле", "Аружан", "Гульнара", "Балжан",
)  # fmt: skip
# (male, female) surname forms; an indeclinable surname has both the same.
KAZAKH_SURNAMES = (
    ("Нурланов", "Нурланова"), ("Сейткали", "Сейткали"), ("Жумабаев", "Жумабаева"),
    ("Ахметов", "Ахметова"), ("Омаров", "Омарова"), ("Касымов", "Касымова"), ("Искаков", "Искакова"),
    ("Тулегенов", "Тулегенова"), ("Сарсенбаев", "Сарсенбаева"), ("Абдрахманов", "Абдрахманова"),
    ("Байжанов", "Байжанова"), ("Есенов", "Есенова"), ("Кенжебеков", "Кенжебекова"),
    ("Оспанов", "Оспанова"), ("Сулейменов", "Сулейменова"), ("Мукашев", "Мукашева"),
    ("Бекмуратов", "Бекмуратова"), ("Жаксылыков", "Жаксылыкова"),
)  # fmt: skip
# Father's name → (Russian-style patronymic m, f, Kazakh-style root for -ұлы / -қызы)
KAZAKH_FATHERS = (
    ("Маратович", "Маратовна", "Марат"), ("Нурланович", "Нурлановна", "Нұрлан"),
    ("Серикович", "Сериковна", "Серік"), ("Ермекович", "Ермековна", "Ермек"),
    ("Кайратович", "Кайратовна", "Қайрат"), ("Болатович", "Болатовна", "Болат"),
    ("Амангельдиевич", "Амангельдиевна", "Амангелді"), ("Жумабекович", "Жумабековна", "Жұмабек"),
    ("Бекенович", "Бекеновна", "Бекен"), ("Талгатович", "Талгатовна", "Талғат"),
)  # fmt: skip
RUSSIAN_MALE = (
    "Сергей", "Андрей", "Дмитрий", "Алексей", "Владимир", "Игорь", "Николай", "Евгений", "Виктор",
    "Олег", "Павел", "Юрий",
)  # fmt: skip
RUSSIAN_FEMALE = (
    "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Людмила", "Галина", "Марина",
    "Анна", "Валентина", "Оксана",
)  # fmt: skip
RUSSIAN_SURNAMES = (
    ("Иванов", "Иванова"), ("Петров", "Петрова"), ("Смирнов", "Смирнова"), ("Кузнецов", "Кузнецова"),
    ("Попов", "Попова"), ("Соколов", "Соколова"), ("Лебедев", "Лебедева"), ("Козлов", "Козлова"),
    ("Новиков", "Новикова"), ("Морозов", "Морозова"), ("Волков", "Волкова"), ("Федоров", "Федорова"),
    ("Ким", "Ким"), ("Пак", "Пак"), ("Шевченко", "Шевченко"), ("Цой", "Цой"),
)  # fmt: skip
RUSSIAN_PATRONYMICS = (
    ("Иванович", "Ивановна"), ("Петрович", "Петровна"), ("Сергеевич", "Сергеевна"),
    ("Александрович", "Александровна"), ("Николаевич", "Николаевна"), ("Владимирович", "Владимировна"),
    ("Михайлович", "Михайловна"), ("Викторович", "Викторовна"), ("Юрьевич", "Юрьевна"),
)  # fmt: skip

# --- banks and payment agents -------------------------------------------------------------------------
# (name on the payment, code used in its reference, weight)
BANKS: tuple[tuple[str, str, int], ...] = (
    ("Kaspi Bank", "KSP", 38),
    ("Halyk Bank", "HLK", 27),
    ("Freedom Bank", "FRB", 7),
    ("ForteBank", "FRT", 6),
    ("Jusan Bank", "JSN", 6),
    ("Bank CenterCredit", "BCC", 6),
    ("Евразийский банк", "EUB", 4),
    ("Home Credit Bank", "HCB", 3),
    ("АО «Казпочта»", "KZP", 3),
)

CANCEL_REASONS = (
    "Ошибочный платёж",
    "Возврат по заявлению плательщика",
    "Платёж зачислен не на тот лицевой счёт",
)
CORRECTION_REASONS_MINUS = (
    "Перерасчёт за период временного отсутствия",
    "Перерасчёт по заявлению потребителя",
    "Корректировка ошибочно введённых показаний",
    "Перерасчёт по акту сверки",
)
CORRECTION_REASONS_PLUS = (
    "Доначисление по акту проверки прибора учёта",
    "Доначисление по акту сверки",
)

# --- meters -------------------------------------------------------------------------------------------
METER_MODELS = ("CE102", "CE101", "MERC201", "NEVA101", "SOE55")

# --- the tariff catalog (RATING.md §2, §3): data the back-office publishes -----------------------------
# (electric_stove, living_alone, tier1, tier2) kWh per resident per 30.5-day month
NORMS: tuple[tuple[bool, bool, int, int], ...] = (
    (False, False, 90, 160),
    (True, False, 115, 190),
    (False, True, 115, 160),
    (True, True, 140, 190),
)
# effective from, flat, tier 1, tier 2, tier 3 (net KZT/kWh)
TARIFFS: tuple[tuple[date, Decimal, Decimal, Decimal, Decimal], ...] = (
    (date(2018, 3, 1), Decimal("16.36"), Decimal("14.87"), Decimal("19.63"), Decimal("24.54")),
    (date(2025, 7, 1), Decimal("31.85"), Decimal("28.95"), Decimal("38.22"), Decimal("47.77")),
)
VAT_RATES: tuple[tuple[date, Decimal], ...] = (
    (date(2009, 1, 1), Decimal("0.12")),
    (date(2026, 1, 1), Decimal("0.16")),
)


def flat_rate_on(day: date) -> Decimal:
    rate = TARIFFS[0][1]
    for effective, flat, *_ in TARIFFS:
        if effective <= day:
            rate = flat
    return rate


def vat_rate_on(day: date) -> Decimal:
    rate = VAT_RATES[0][1]
    for effective, value in VAT_RATES:
        if effective <= day:
            rate = value
    return rate


def office(code: str) -> DistrictOffice:
    for item in DISTRICT_OFFICES:
        if item.code == code:
            return item
    raise KeyError(code)
