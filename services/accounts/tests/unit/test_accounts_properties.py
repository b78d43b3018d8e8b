"""Property tests of the Account aggregate over random back-office deliveries.

A delivery is an AccountOpened somewhere in a random sequence of attribute changes and meter
replacements (valid chains and invalid ones), with re-sent duplicates. It is processed as the ingest
does: changes before the opening are parked and applied, in order, right after it; rejected commands
are set aside (dead letters). The expectations are computed here from the generated facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.domain.account import Account, AccountCommand, AccountEvent, decide
from accounts.domain.errors import AccountNotOpened, Rejected
from contracts import backoffice as bo

NO = "100200300401"
OPENED_ON = date(2024, 1, 1)


@dataclass
class Outcome:
    account: Account
    emitted: list[AccountEvent] = field(default_factory=list)
    accepted: list[AccountCommand] = field(default_factory=list)  # not rejected (maybe a re-sent no-op)
    applied: list[AccountCommand] = field(default_factory=list)  # produced events
    rejected: list[AccountCommand] = field(default_factory=list)
    parked: list[AccountCommand] = field(default_factory=list)


def deliver(commands: list[AccountCommand]) -> Outcome:
    """As the ingest does it: park before the opening, apply the parked right after it, set rejects aside."""
    out = Outcome(Account(NO))

    def handle(command: AccountCommand) -> None:
        try:
            events = decide(out.account, command)
        except AccountNotOpened:
            out.parked.append(command)
            return
        except Rejected:
            out.rejected.append(command)
            return
        out.accepted.append(command)
        if events:
            out.applied.append(command)
        for event in events:
            out.account = out.account.apply(event)
            out.emitted.append(event)
        if isinstance(command, bo.AccountOpened):
            parked, out.parked = out.parked, []
            for p in parked:
                handle(p)

    for command in commands:
        handle(command)
    return out


def day(offset: int) -> date:
    return OPENED_ON + timedelta(days=offset)


def opening(residents: int, tariff: str) -> bo.AccountOpened:
    return bo.AccountOpened.model_validate(
        {
            "account_no": NO,
            "payer_name": "Payer 0",
            "address": "Almaty",
            "residents": residents,
            "electric_stove": False,
            "living_alone": False,
            "tariff_option": tariff,
            "district_office_code": "R1",
            "opened_on": OPENED_ON,
            "meter": {"serial": "S0", "digits": 6, "installed_on": OPENED_ON, "initial_reading": "0.00"},
        }
    )


offsets = st.integers(min_value=-3, max_value=60)  # a few fall before the opening: rejected


@st.composite
def attribute_change(draw: st.DrawFn) -> AccountCommand:
    kind = draw(st.sampled_from(["residents", "tariff", "payer"]))
    eff = day(draw(offsets))
    if kind == "residents":
        return bo.ResidentsChanged(account_no=NO, residents=draw(st.integers(0, 3)), effective_from=eff)
    if kind == "tariff":
        return bo.TariffOptionChanged(
            account_no=NO, tariff_option=draw(st.sampled_from(["flat", "tiered"])), effective_from=eff
        )
    return bo.PayerChanged(account_no=NO, payer_name=f"Payer {draw(st.integers(0, 2))}", effective_from=eff)


def replacement(old: str, new: str, on: int, reading: int = 5) -> bo.MeterReplaced:
    return bo.MeterReplaced.model_validate(
        {
            "account_no": NO,
            "old_serial": old,
            "final_reading": f"{reading}.00",
            "new_serial": new,
            "digits": 6,
            "initial_reading": "0.00",
            "replaced_on": day(on),
        }
    )


@st.composite
def deliveries(draw: st.DrawFn) -> list[AccountCommand]:
    changes: list[AccountCommand] = draw(st.lists(attribute_change(), max_size=12))
    # A valid chain of replacements S0 → S1 → ..., on increasing dates, plus a few invalid ones.
    chain_length = draw(st.integers(0, 4))
    dates = sorted(draw(st.lists(st.integers(0, 60), min_size=chain_length, max_size=chain_length)))
    chain: list[AccountCommand] = [replacement(f"S{i}", f"S{i + 1}", on) for i, on in enumerate(dates)]
    invalid: list[AccountCommand] = draw(
        st.lists(
            st.builds(
                lambda o, n, on: replacement(f"X{o}", f"S{n}", on),
                st.integers(0, 2),
                st.integers(0, 9),
                st.integers(0, 60),
            ),
            max_size=2,
        )
    )
    # Interleave: the chain's relative order is kept (a replacement is valid only after the previous one).
    body: list[AccountCommand] = list(chain)
    for command in [*changes, *invalid]:
        body.insert(draw(st.integers(0, len(body))), command)
    opened = opening(draw(st.integers(0, 3)), draw(st.sampled_from(["flat", "tiered"])))
    position = draw(st.integers(0, len(body)))
    commands = [*body[:position], opened, *body[position:]]
    # Re-sent facts, anywhere after their first delivery.
    for _ in range(draw(st.integers(0, 5))):
        index = draw(st.integers(0, len(commands) - 1))
        commands.insert(draw(st.integers(index + 1, len(commands))), commands[index])
    return commands


@given(deliveries())
@settings(max_examples=300, deadline=None)
def test_replaying_the_events_reproduces_the_state(commands: list[AccountCommand]) -> None:
    out = deliver(commands)
    assert Account.replay(NO, out.emitted) == out.account
    assert out.account.version == len(out.emitted)
    assert out.parked == []  # everything parked was applied once the account opened


@given(deliveries())
@settings(max_examples=300, deadline=None)
def test_duplicate_facts_add_nothing(commands: list[AccountCommand]) -> None:
    out = deliver(commands)
    for command in out.accepted:
        assert decide(out.account, command) == []
    # Delivering everything twice emits exactly what delivering it once did.
    assert deliver([*commands, *commands]).emitted == out.emitted


@given(deliveries(), st.data())
@settings(max_examples=300, deadline=None)
def test_parking_is_the_same_as_waiting_for_the_opening(commands: list[AccountCommand], data: Any) -> None:
    """Changes delivered before the opening give the same events as the same changes after it."""
    opened = next(c for c in commands if isinstance(c, bo.AccountOpened))
    rest = [c for c in commands if not isinstance(c, bo.AccountOpened)]
    k = data.draw(st.integers(0, len(rest)))
    assert deliver([*rest[:k], opened, *rest[k:]]).emitted == deliver([opened, *rest]).emitted


@given(deliveries())
@settings(max_examples=300, deadline=None)
def test_current_attributes_follow_the_latest_effective_date(commands: list[AccountCommand]) -> None:
    out = deliver(commands)
    opened = next(c for c in out.accepted if isinstance(c, bo.AccountOpened))
    facts: list[tuple[date, int, int]] = [(opened.opened_on, -1, opened.residents)]
    facts += [
        (c.effective_from, i, c.residents)
        for i, c in enumerate(out.applied)
        if isinstance(c, bo.ResidentsChanged)
    ]
    assert out.account.residents == max(facts)[2]
    assert all(
        c.effective_from >= OPENED_ON
        for c in out.accepted
        if isinstance(c, bo.ResidentsChanged | bo.TariffOptionChanged | bo.PayerChanged)
    )


@given(deliveries())
@settings(max_examples=300, deadline=None)
def test_the_meter_history_is_a_chain(commands: list[AccountCommand]) -> None:
    account = deliver(commands).account
    meters = account.meters
    assert [m.serial for m in meters] == [f"S{i}" for i in range(len(meters))]
    assert all(m.removed_on is not None for m in meters[:-1]) and meters[-1].removed_on is None
    assert account.meter == meters[-1]
    assert len(account.replacements) == len(meters) - 1
    for before, after, replaced in zip(meters, meters[1:], account.replacements, strict=False):
        assert before.removed_on == after.installed_on == replaced.replaced_on
        assert before.final_reading == replaced.final_reading
    assert account.replaced_on == (account.replacements[-1].replaced_on if account.replacements else None)
