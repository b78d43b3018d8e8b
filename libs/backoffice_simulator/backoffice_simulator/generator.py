"""The seeded world: district offices, the tariff catalog, households with meters, and their months.

`generate(Scenario(...))` returns every back-office message of the scenario in a realistic order (by the
time it occurred) and the households' final state (for the live `stream`). It is deterministic:

- every random draw comes from a `random.Random` seeded with a string built from the scenario's seed and
  the thing drawn for (an account, a month), so adding accounts or months never changes the others;
- event ids are uuid5 of a stable key (wire.py) and payment/correction ids are hashes of the same keys.

So a re-run publishes byte-identical messages, which the services de-duplicate (idempotent seeding).

What a month of a household looks like: the grid company reads the meter between the 15th and the 27th
(sometimes it doesn't: the calculator then estimates the period); the bank reports the payment of the
previous month's bill (on time, late, partial, rounded up or a fixed prepayment, depending on the
payer); now and then a correction, a cancelled payment (re-paid days later), a meter replacement, a
change of residents, of tariff option or of payer. The back-office closes the period on the 1st of the
next month, after which the calculator runs the billing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from backoffice_simulator import reference as ref
from backoffice_simulator.wire import ALMATY, OutMessage, almaty, message
from contracts import backoffice as bo
from contracts.money import ZERO, round_half_up

# The demo customer's accounts (README: the local stack's demo). Their data depend on the window only.
DEMO_ACCOUNTS = ("770100200301", "770100200302", "770100200303")
DEMO_LINKED = DEMO_ACCOUNTS[:2]
DEMO_MANUAL = DEMO_ACCOUNTS[2]
DEMO_MONTHS = 24
DEMO_FULL_NAME = "Нурланова Айгерим Маратовна"

SEASON = {
    1: 1.3,
    2: 1.2,
    3: 1.05,
    4: 0.95,
    5: 0.85,
    6: 0.85,
    7: 0.95,
    8: 0.95,
    9: 0.85,
    10: 0.95,
    11: 1.1,
    12: 1.3,
}
PROFILES = (("punctual", 45), ("rounder", 18), ("late", 12), ("partial", 10), ("prepay", 8), ("irregular", 7))


# --- months -------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        year, _, month = text.partition("-")
        result = cls(int(year), int(month))
        if not 1 <= result.month <= 12 or len(text) != 7:
            raise ValueError(f"not a YYYY-MM month: {text!r}")
        return result

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def plus(self, n: int) -> Month:
        index = self.year * 12 + self.month - 1 + n
        return Month(index // 12, index % 12 + 1)

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return self.plus(1).first - timedelta(days=1)

    @property
    def days(self) -> int:
        return self.last.day

    def day(self, n: int) -> date:
        return date(self.year, self.month, min(n, self.days))


def almaty_today() -> date:
    return datetime.now(ALMATY).date()


def default_start(months: int, today: date | None = None) -> Month:
    """The window of `months` months ending with the last month that has ended (in Almaty)."""
    current = Month.of(today or almaty_today())
    return current.plus(-months)


# --- the scenario -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int = 1
    accounts: int = 20
    months: int = 12
    start: Month | None = None  # default: the window ending last month
    demo: bool = False
    account_prefix: str | None = None  # digits; account numbers are prefix + index, 12 digits in all
    missing_rate: float = 0.07  # months without a grid reading (estimated by the calculator)
    new_accounts_rate: float = 0.15  # households opened during the window (the others just before it)
    reference_data: bool = True  # district offices and the tariff catalog
    today: date | None = None  # for the default window (tests pin it)
    # The demo accounts' history: from demo_start (default: DEMO_MONTHS before its end) to demo_end
    # (default: the window's last month). Extending demo_end only appends months.
    demo_start: Month | None = None
    demo_end: Month | None = None

    @property
    def demo_window(self) -> list[Month]:
        end = self.demo_end or self.window[-1]
        start = self.demo_start or end.plus(-(DEMO_MONTHS - 1))
        months = []
        while start <= end:
            months.append(start)
            start = start.plus(1)
        return months

    @property
    def window_start(self) -> Month:
        return self.start or default_start(self.months, self.today)

    @property
    def window(self) -> list[Month]:
        start = self.window_start
        return [start.plus(i) for i in range(self.months)]

    @property
    def prefix(self) -> str:
        if self.account_prefix is not None:
            if not self.account_prefix.isdigit() or not 2 <= len(self.account_prefix) <= 8:
                raise ValueError("the account prefix must be 2 to 8 digits")
            return self.account_prefix
        return f"7{random.Random(f'{self.seed}:prefix').randrange(10**5):05d}"  # noqa: S311

    @property
    def tag(self) -> str:
        """What tells this scenario's period closings from another's (see `generate`)."""
        # (the demo's closings are published once its accounts are in: a tag of their own)
        return f"{self.seed}:{self.prefix}{':demo-after-ingest' if self.demo else ''}"

    def account_no(self, index: int) -> str:
        width = 12 - len(self.prefix)
        if index >= 10**width:
            raise ValueError(f"at most {10**width - 1} accounts with the prefix {self.prefix}")
        return f"{self.prefix}{index:0{width}d}"


@dataclass
class Meter:
    serial: str
    digits: int
    value: Decimal
    installed_on: date

    @property
    def capacity(self) -> Decimal:
        return Decimal(10) ** self.digits


@dataclass
class Household:
    """One account's state as the back-office knows it (also the starting point of the live stream)."""

    account_no: str
    key: str  # the seed of its random draws (a month's draws: Random(f"{key}:{month}"))
    rng: random.Random
    payer_name: str
    female: bool
    surname: tuple[str, str]
    office: ref.DistrictOffice
    address: str
    residents: int
    electric_stove: bool
    living_alone: bool
    tariff_option: str
    meter: Meter
    opened_on: date
    opening_balance: Decimal
    profile: str
    factor: float
    demo: str | None = None  # linked | manual
    last_reading: date | None = None
    owed: Decimal = ZERO  # what the simulator thinks is due (drives the payment amounts only)
    prepay: Decimal = ZERO
    replaced: bool = False
    payment_days: set[date] = field(default_factory=set)
    scripted: dict[str, set[int]] = field(default_factory=dict)  # demo: event kind → month indexes

    def monthly_kwh(self, month: int) -> float:
        if self.residents == 0:
            base = 25.0
        else:
            base = 55.0 + 65.0 * self.residents + (70.0 if self.electric_stove else 0.0)
            if self.living_alone:
                base *= 0.85
        return base * SEASON[month] * self.factor

    def consumption(self, rng: random.Random, start: date, end: date) -> Decimal:
        """Whole kWh used in [start, end): the daily rate of each day's month, with some noise."""
        total = 0.0
        day = start
        while day < end:
            total += self.monthly_kwh(day.month) / 30.4
            day += timedelta(days=1)
        return Decimal(max(0, round(total * rng.uniform(0.92, 1.08))))


# --- helpers ------------------------------------------------------------------------------------------
def _hash(*parts: object) -> str:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()


def _weighted(rng: random.Random, items: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([i for i, _ in items], weights=[w for _, w in items])[0]


def _money(value: float) -> Decimal:
    return round_half_up(Decimal(str(round(value, 2))))


def _at(rng: random.Random, day: date, earliest: int = 9, latest: int = 20) -> datetime:
    return almaty(day, time(rng.randint(earliest, latest), rng.randint(0, 59), rng.randint(0, 59)))


def person(rng: random.Random) -> tuple[str, bool, tuple[str, str]]:
    """A full name (Фамилия Имя Отчество), whether female, and the surname's two forms."""
    female = rng.random() < 0.5
    if rng.random() < 0.67:
        surname = rng.choice(ref.KAZAKH_SURNAMES)
        first = rng.choice(ref.KAZAKH_FEMALE if female else ref.KAZAKH_MALE)
        father = rng.choice(ref.KAZAKH_FATHERS)
        style = rng.random()
        if style < 0.6:
            patronymic = father[1] if female else father[0]
        elif style < 0.85:
            patronymic = father[2] + ("қызы" if female else "ұлы")
        else:
            patronymic = ""
    else:
        surname = rng.choice(ref.RUSSIAN_SURNAMES)
        first = rng.choice(ref.RUSSIAN_FEMALE if female else ref.RUSSIAN_MALE)
        pat = rng.choice(ref.RUSSIAN_PATRONYMICS)
        patronymic = pat[1] if female else pat[0]
    name = " ".join(x for x in (surname[1] if female else surname[0], first, patronymic) if x)
    return name, female, surname


def address(rng: random.Random, office: ref.DistrictOffice) -> str:
    street = rng.choice(office.streets)
    house = rng.randint(1, 240) if street.startswith("мкр.") is False else rng.randint(1, 60)
    suffix = rng.choice(("", "", "", "", "А", "Б", "/1")) if not street.startswith("мкр.") else ""
    if rng.random() < 0.15 and not street.startswith("мкр."):  # a private house
        return f"г. Алматы, {office.district} р-н, {street}, д. {house}{suffix}"
    return f"г. Алматы, {office.district} р-н, {street}, д. {house}{suffix}, кв. {rng.randint(1, 180)}"


def meter_serial(rng: random.Random, account_no: str, n: int) -> str:
    model = rng.choice(ref.METER_MODELS)
    return f"{model}-{int(_hash('meter', account_no, n)[:12], 16) % 10**8:08d}"


# --- the world ----------------------------------------------------------------------------------------
@dataclass
class World:
    scenario: Scenario
    messages: list[OutMessage]
    households: dict[str, Household]
    periods: list[Month]

    @property
    def demo_accounts(self) -> list[str]:
        return [no for no, h in self.households.items() if h.demo]


class _Timeline:
    """Collects messages with their time; `ordered()` sorts them stably by that time."""

    def __init__(self) -> None:
        self._items: list[tuple[datetime, int, OutMessage]] = []

    def add(self, msg: OutMessage) -> None:
        self._items.append((msg.at, len(self._items), msg))

    def ordered(self) -> list[OutMessage]:
        return [m for _, _, m in sorted(self._items, key=lambda item: (item[0], item[1]))]


def reference_messages(at: datetime) -> Iterator[OutMessage]:
    """District offices, tariff rows (with the §2 norms) and VAT rates: what every scenario starts with."""
    for office in ref.DISTRICT_OFFICES:
        payload = bo.DistrictOfficeUpdated(
            code=office.code, name=office.name, address=office.address, phone=office.phone, hours=office.hours
        )
        yield message(payload, key=office.code, id_key=f"office:{office.code}:v1", at=at)
    norms = [
        bo.TierNormRow(electric_stove=stove, living_alone=alone, tier1_kwh=Decimal(t1), tier2_kwh=Decimal(t2))
        for stove, alone, t1, t2 in ref.NORMS
    ]
    for effective, flat, tier1, tier2, tier3 in ref.TARIFFS:
        tariff = bo.TariffPublished(
            effective_from=effective, flat=flat, tier1=tier1, tier2=tier2, tier3=tier3, norms=norms
        )
        yield message(tariff, key=effective.isoformat(), id_key=f"tariff:{effective}", at=at)
    for effective, rate in ref.VAT_RATES:
        vat = bo.VatRateChanged(effective_from=effective, rate=rate)
        yield message(vat, key=effective.isoformat(), id_key=f"vat:{effective}", at=at)


def new_household(scenario: Scenario, index: int, window: list[Month]) -> Household:
    no = scenario.account_no(index)
    # By index, not number: the same seed with another prefix is the same households (tests compare them).
    key = f"{scenario.seed}:household:{index}"
    rng = random.Random(key)  # noqa: S311
    name, female, surname = person(rng)
    office = rng.choice(ref.DISTRICT_OFFICES)
    residents = rng.choices(range(7), weights=(3, 15, 25, 22, 18, 10, 7))[0]
    alone = residents == 1 and rng.random() < 0.35
    stove = rng.random() < 0.45
    tiered = residents >= 1 and rng.random() < 0.3
    if residents == 0 and rng.random() < 0.2:
        tiered = True  # rated on flat (RATING.md §1): the edge the calculator must report
    digits = rng.choice((5, 5, 6, 6, 6))
    if rng.random() < 0.04:
        digits, value = 5, Decimal(rng.randint(99_000, 99_700))  # this meter rolls over in the window
    else:
        value = Decimal(rng.randint(0, int(0.6 * 10**digits)))
    if rng.random() >= scenario.new_accounts_rate or len(window) < 2:
        opened = window[0].plus(-1).day(rng.randint(1, 28))
    else:
        opened = window[rng.randint(1, len(window) - 1)].day(rng.randint(1, 26))
    balance_kind = rng.random()
    if balance_kind < 0.6:
        balance = ZERO
    elif balance_kind < 0.85:
        balance = _money(rng.uniform(100, 8000))
    elif balance_kind < 0.95:
        balance = -_money(rng.uniform(300, 3000))
    else:
        balance = _money(rng.uniform(10_000, 60_000))
    household = Household(
        account_no=no,
        key=key,
        rng=rng,
        payer_name=name,
        female=female,
        surname=surname,
        office=office,
        address=address(rng, office),
        residents=residents,
        electric_stove=stove,
        living_alone=alone,
        tariff_option="tiered" if tiered else "flat",
        meter=Meter(meter_serial(rng, no, 1), digits, value, opened),
        opened_on=opened,
        opening_balance=balance,
        profile=_weighted(rng, PROFILES),
        factor=rng.uniform(0.75, 1.3),
    )
    household.owed = balance
    return household


def demo_households(start: Month) -> list[Household]:
    """The demo customer's accounts: scripted, so the portal shows every kind of history."""
    opened = start.plus(-1).day(20)
    specs = [
        # account, payer, office, address, residents, stove, alone, option, digits, value, balance, profile
        (
            DEMO_ACCOUNTS[0], DEMO_FULL_NAME, "04", "г. Алматы, Бостандыкский р-н, ул. Розыбакиева, д. 187, кв. 45",
            3, True, False, "tiered", 6, Decimal(48_211), ZERO, "punctual",
            {"correction": {7}, "missing": {13}, "cancel": {10}, "replace": {17}},
        ),
        (
            DEMO_ACCOUNTS[1], "Нурланова Гульмира Сериковна", "06", "г. Алматы, Медеуский р-н, пр. Достык, д. 89, кв. 12",
            1, False, True, "flat", 5, Decimal(99_120), Decimal("-1200.00"), "rounder",
            {"tariff": {11}, "correction": {19}},
        ),
        (
            DEMO_ACCOUNTS[2], "Нурланов Ерлан Болатович", "02", "г. Алматы, Алмалинский р-н, ул. Толе би, д. 63, кв. 7",
            4, True, False, "flat", 6, Decimal(231_640), Decimal("3450.75"), "partial",
            {"residents": {9}, "missing": {5}},
        ),
    ]  # fmt: skip
    households = []
    for (
        no,
        payer,
        code,
        addr,
        residents,
        stove,
        alone,
        option,
        digits,
        value,
        balance,
        profile,
        script,
    ) in specs:
        key = f"demo:{no}:{start}"
        rng = random.Random(key)  # noqa: S311
        h = Household(
            account_no=no,
            key=key,
            rng=rng,
            payer_name=payer,
            female=payer.endswith("вна"),
            surname=("Нурланов", "Нурланова"),
            office=ref.office(code),
            address=addr,
            residents=residents,
            electric_stove=stove,
            living_alone=alone,
            tariff_option=option,
            meter=Meter(meter_serial(rng, no, 1), digits, value, opened),
            opened_on=opened,
            opening_balance=balance,
            profile=profile,
            factor=1.0,
            demo="manual" if no == DEMO_MANUAL else "linked",
            scripted=script,
        )
        h.owed = balance
        households.append(h)
    return households


def generate(scenario: Scenario) -> World:
    window = scenario.window
    if not window:
        raise ValueError("a scenario needs at least one month")
    timeline = _Timeline()
    households: dict[str, Household] = {}
    for i in range(scenario.accounts):
        h = new_household(scenario, i + 1, window)
        households[h.account_no] = h
    windows: dict[str, list[Month]] = {no: window for no in households}
    if scenario.demo:
        demo_window = scenario.demo_window
        for h in demo_households(demo_window[0]):
            households[h.account_no] = h
            windows[h.account_no] = demo_window
    periods = sorted({m for w in windows.values() for m in w})
    earliest = min(h.opened_on for h in households.values()) if households else periods[0].first
    if scenario.reference_data:
        for msg in reference_messages(
            almaty(min(earliest, periods[0].first) - timedelta(days=1), time(8, 0))
        ):
            timeline.add(msg)
    for no, h in households.items():
        for msg in simulate(h, windows[no], missing_rate=scenario.missing_rate):
            timeline.add(msg)
    # One close per period and scenario: a re-run is a duplicate (nothing happens), while another
    # scenario's close of the same period is a repeated close, which bills the accounts not billed yet.
    for month in periods:
        close = bo.PeriodClosed(period=str(month))
        at = almaty(month.plus(1).first, time(0, 30))
        timeline.add(message(close, key=str(month), id_key=f"period-closed:{month}:{scenario.tag}", at=at))
    return World(scenario, timeline.ordered(), households, periods)


# --- one household through its months -----------------------------------------------------------------
def simulate(h: Household, window: list[Month], *, missing_rate: float = 0.07) -> Iterator[OutMessage]:
    rng = h.rng
    no = h.account_no
    meter_count = 1
    yield message(
        bo.AccountOpened(
            account_no=no,
            payer_name=h.payer_name,
            address=h.address,
            residents=h.residents,
            electric_stove=h.electric_stove,
            living_alone=h.living_alone,
            tariff_option=h.tariff_option,
            district_office_code=h.office.code,
            opened_on=h.opened_on,
            meter=bo.MeterSpec(
                serial=h.meter.serial,
                digits=h.meter.digits,
                installed_on=h.meter.installed_on,
                initial_reading=h.meter.value,
            ),
            opening_balance=h.opening_balance,
        ),
        key=no,
        id_key=f"account-opened:{no}",
        at=_at(rng, h.opened_on),
    )
    h.last_reading = h.opened_on
    window_end = window[-1].last
    bills: dict[Month, Decimal] = {}
    for index, month in enumerate(window):
        if month.last < h.opened_on:
            continue
        script = {kind for kind, months in h.scripted.items() if index in months}
        settled = month.first > h.opened_on  # changes and corrections come after the opening month
        mrng = random.Random(f"{h.key}:{month}")  # noqa: S311 - per month: adding months shifts nothing
        active_from = max(month.first, h.opened_on)
        # The bill of the month (what the customer roughly owes for it), for the payments of the next one.
        days = (month.last - active_from).days + 1
        kwh = Decimal(round(h.monthly_kwh(month.month) * days / month.days))
        bills[month] = approximate_bill(h, month.day(15), kwh, days)

        # Changes of the household (before the reading, so the reading sees them).
        if "residents" in script or (not h.demo and settled and mrng.random() < 0.01):
            new = max(0, min(6, h.residents + (1 if h.residents <= 1 or mrng.random() < 0.5 else -1)))
            if new != h.residents:
                h.residents = new
                day = month.day(mrng.randint(2, 10))
                yield message(
                    bo.ResidentsChanged(account_no=no, residents=new, effective_from=month.first),
                    key=no,
                    id_key=f"residents:{no}:{month}",
                    at=_at(mrng, day),
                )
        if "tariff" in script or (not h.demo and settled and mrng.random() < 0.004):
            option = "flat" if h.tariff_option == "tiered" else "tiered"
            if option == "flat" or h.residents >= 1:
                h.tariff_option = option
                yield message(
                    bo.TariffOptionChanged(
                        account_no=no, tariff_option=option, effective_from=month.plus(1).first
                    ),
                    key=no,
                    id_key=f"tariff-option:{no}:{month}",
                    at=_at(mrng, month.day(mrng.randint(2, 12))),
                )
        if not h.demo and settled and mrng.random() < 0.002:
            first = mrng.choice(ref.KAZAKH_FEMALE + ref.RUSSIAN_FEMALE)
            h.payer_name = f"{h.surname[1]} {first}"
            day = month.day(mrng.randint(2, 12))
            yield message(
                bo.PayerChanged(account_no=no, payer_name=h.payer_name, effective_from=day),
                key=no,
                id_key=f"payer:{no}:{month}",
                at=_at(mrng, day),
            )
        replace = "replace" in script or (
            not h.demo and not h.replaced and index > 0 and mrng.random() < 0.008
        )
        if replace and h.last_reading is not None:
            day = month.day(mrng.randint(3, 12))
            if day > h.last_reading:
                final = _advance(h.meter, h.consumption(mrng, h.last_reading, day))
                meter_count += 1
                digits = mrng.choice((5, 6, 6))
                new_meter = Meter(
                    meter_serial(mrng, no, meter_count), digits, Decimal(mrng.randint(0, 12)), day
                )
                yield message(
                    bo.MeterReplaced(
                        account_no=no,
                        old_serial=h.meter.serial,
                        final_reading=final,
                        new_serial=new_meter.serial,
                        digits=digits,
                        initial_reading=new_meter.value,
                        replaced_on=day,
                    ),
                    key=no,
                    id_key=f"meter-replaced:{no}:{month}",
                    at=_at(mrng, day, 10, 16),
                )
                h.meter, h.replaced, h.last_reading = new_meter, True, day

        # The grid company's reading.
        missing = "missing" in script or (not h.demo and mrng.random() < missing_rate)
        day = month.day(mrng.randint(15, 27))
        if not missing and h.last_reading is not None and day > h.last_reading:
            value = _advance(h.meter, h.consumption(mrng, h.last_reading, day))
            h.last_reading = day
            yield message(
                bo.GridReadingTaken(
                    account_no=no, meter_serial=h.meter.serial, reading_date=day, value=value
                ),
                key=no,
                id_key=f"reading:{no}:{day}",
                at=_at(mrng, day, 9, 18),
            )

        # Payments (of the previous month's bill, or of the opening balance in the first month).
        yield from _payments(
            h, mrng, month, index, bills.get(month.plus(-1), ZERO), window_end, "cancel" in script
        )

        # A correction of the month.
        if "correction" in script or (not h.demo and settled and mrng.random() < 0.02):
            if mrng.random() < 0.7 or h.demo:
                amount = -_money(mrng.uniform(200, 3000))
                reason = mrng.choice(ref.CORRECTION_REASONS_MINUS)
            else:
                amount = _money(mrng.uniform(300, 5000))
                reason = mrng.choice(ref.CORRECTION_REASONS_PLUS)
            cid = f"COR-{month.year}{month.month:02d}-{_hash('correction', no, month)[:10].upper()}"
            h.owed += amount
            yield message(
                bo.CorrectionIssued(
                    correction_id=cid,
                    account_no=no,
                    service_code="electricity",
                    period=str(month),
                    amount=amount,
                    reason=reason,
                ),
                key=no,
                id_key=f"correction:{cid}",
                at=_at(mrng, month.day(28), 10, 17),
            )


def approximate_bill(h: Household, day: date, kwh: Decimal, days: int) -> Decimal:
    """Roughly what the calculator will charge (RATING.md §2-§4 without the splitting): payers pay this."""
    row = (
        next(r for r in reversed(ref.TARIFFS) if r[0] <= day) if day >= ref.TARIFFS[0][0] else ref.TARIFFS[0]
    )
    _, flat, tier1, tier2, tier3 = row
    # The demo's payers reckon on the flat rate (as their published history does: keep it stable).
    if h.tariff_option == "tiered" and h.residents > 0 and not h.demo:
        norm1, norm2 = next(
            (n1, n2) for s, a, n1, n2 in ref.NORMS if (s, a) == (h.electric_stove, h.living_alone)
        )
        limit1 = Decimal(norm1 * h.residents * days) / Decimal("30.5")
        limit2 = Decimal(norm2 * h.residents * days) / Decimal("30.5")
        first = min(kwh, limit1)
        second = min(kwh - first, limit2 - limit1)
        net = first * tier1 + second * tier2 + (kwh - first - second) * tier3
    else:
        net = kwh * flat
    return round_half_up(net * (1 + ref.vat_rate_on(day)))


def _advance(meter: Meter, kwh: Decimal) -> Decimal:
    meter.value = (meter.value + kwh) % meter.capacity
    return meter.value


def _payments(
    h: Household,
    rng: random.Random,
    month: Month,
    index: int,
    previous_bill: Decimal,
    window_end: date,
    cancel_scripted: bool,
) -> Iterator[OutMessage]:
    h.owed += previous_bill
    owed = h.owed
    amount = ZERO
    profile = h.profile
    last_month = month.last >= window_end
    if profile == "punctual":
        day, amount = rng.randint(3, 20), owed
    elif profile == "rounder":
        day, amount = rng.randint(1, 25), _ceil(owed, 500)
    elif profile == "late":
        day = rng.randint(22, 28)
        amount = _ceil(owed, 100) if index % 2 == 1 or last_month else ZERO
    elif profile == "partial":
        day = rng.randint(5, 25)
        share = Decimal(str(round(rng.uniform(0.5, 0.9), 2)))
        amount = owed if index % 6 == 5 else (owed * share).quantize(Decimal(100), rounding=ROUND_FLOOR)
    elif profile == "prepay":
        if h.prepay == ZERO:
            h.prepay = _ceil(max(previous_bill, Decimal(3000)) * Decimal("1.2"), 1000)
        day, amount = rng.randint(1, 10), h.prepay
    else:  # irregular
        day = rng.randint(1, 28)
        amount = _ceil(owed, 1000) if rng.random() < 0.35 or last_month else ZERO
    if h.demo and amount <= 0:
        amount = _ceil(max(previous_bill, Decimal(500)), 100)  # the demo pays every month: a proof exists
    if amount <= 0:
        return
    paid_on = month.day(day)
    if paid_on <= h.opened_on:
        return
    while paid_on in h.payment_days:  # one payment a day per account: "the last payment" is unambiguous
        paid_on += timedelta(days=1)
    if paid_on > min(month.last, window_end):
        return
    first = _payment(h, rng, month, paid_on, amount, 1)
    yield first
    h.owed -= amount
    cancel = cancel_scripted or (not h.demo and rng.random() < 0.015)
    if cancel:
        cancelled_on = paid_on + timedelta(days=rng.randint(1, 3))
        repaid_on = cancelled_on + timedelta(days=rng.randint(0, 2))
        if repaid_on <= min(month.last, window_end) and repaid_on not in h.payment_days:
            payload = first.document()["payload"]
            yield message(
                bo.PaymentCancelled(
                    payment_id=payload["payment_id"],
                    account_no=h.account_no,
                    reason=rng.choice(ref.CANCEL_REASONS),
                ),
                key=h.account_no,
                id_key=f"payment-cancelled:{payload['payment_id']}",
                at=_at(rng, cancelled_on, 9, 12),
            )
            yield _payment(h, rng, month, repaid_on, amount, 2, earliest=13)


def _payment(
    h: Household, rng: random.Random, month: Month, paid_on: date, amount: Decimal, n: int, earliest: int = 9
) -> OutMessage:
    name, code, _ = rng.choices(ref.BANKS, weights=[w for *_, w in ref.BANKS])[0]
    h.payment_days.add(paid_on)
    payment_id = f"{code}{paid_on:%Y%m%d}{_hash('payment', h.account_no, month, n)[:12].upper()}"
    return message(
        bo.PaymentReported(
            payment_id=payment_id,
            account_no=h.account_no,
            amount=amount,
            paid_on=paid_on,
            bank=name,
            service_code="electricity",
        ),
        key=h.account_no,
        id_key=f"payment:{payment_id}",
        at=_at(rng, paid_on, earliest, 21),
    )


def _ceil(value: Decimal, step: int) -> Decimal:
    if value <= 0:
        return ZERO
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step + ZERO
