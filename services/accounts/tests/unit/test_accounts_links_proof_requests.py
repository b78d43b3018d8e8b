"""Links, the ownership proof, and the customer request lifecycle: pure rules."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.domain.errors import NotLinked, Rejected
from accounts.domain.links import AccountLinks, decide_link, decide_unlink
from accounts.domain.proof import LinkProof, PaymentRecord, last_payment, proof_matches
from accounts.domain.requests import TRANSITIONS, ServiceRequest, decide_progress, submit
from contracts.backoffice import ServiceRequestProgressed
from contracts.events.accounts import AccountLinked, AccountUnlinked, ServiceRequestStatusChanged

NO = "100200300401"
ALICE, BOB = uuid.uuid4(), uuid.uuid4()


# --- links -------------------------------------------------------------------------------------------
def test_linking_is_idempotent_per_user_and_several_users_may_link() -> None:
    links = AccountLinks(NO)
    assert decide_link(links, ALICE) == [AccountLinked(account_no=NO, user_id=ALICE)]
    links = links.apply(AccountLinked(account_no=NO, user_id=ALICE))
    assert decide_link(links, ALICE) == []
    links = links.apply(AccountLinked(account_no=NO, user_id=BOB))
    assert links.users == {ALICE, BOB} and links.version == 2


def test_unlinking_removes_only_the_callers_link() -> None:
    links = AccountLinks.replay(
        NO, [AccountLinked(account_no=NO, user_id=ALICE), AccountLinked(account_no=NO, user_id=BOB)]
    )
    assert decide_unlink(links, ALICE) == [AccountUnlinked(account_no=NO, user_id=ALICE)]
    links = links.apply(AccountUnlinked(account_no=NO, user_id=ALICE))
    assert links.users == {BOB}
    with pytest.raises(NotLinked):
        decide_unlink(links, ALICE)
    # Linking again after unlinking is a new link.
    assert decide_link(links, ALICE) == [AccountLinked(account_no=NO, user_id=ALICE)]


# --- proof -------------------------------------------------------------------------------------------
def pay(pid: str, paid_on: date, amount: str, version: int, *, reversed_: bool = False) -> PaymentRecord:
    return PaymentRecord(pid, paid_on, Decimal(amount), f"ledger:{NO}:electricity", version, reversed_)


def test_the_last_payment_is_the_latest_not_reversed() -> None:
    a = pay("a", date(2025, 2, 10), "1000.00", 3)
    b = pay("b", date(2025, 3, 5), "2500.50", 5)
    c = pay("c", date(2025, 3, 5), "700.00", 6)  # same day, later in the ledger's stream
    assert last_payment([b, a, c]) == c
    assert last_payment([a, b, pay("c", date(2025, 3, 5), "700.00", 6, reversed_=True)]) == b
    assert last_payment([]) is None
    assert last_payment([pay("x", date(2025, 1, 1), "1.00", 1, reversed_=True)]) is None


def test_the_proof() -> None:
    payments = [pay("a", date(2025, 2, 10), "1000.00", 3), pay("b", date(2025, 3, 5), "2500.50", 5)]
    assert proof_matches(True, payments, LinkProof(NO, "2025-03", Decimal("2500.50")))
    assert proof_matches(True, payments, LinkProof(NO, "2025-03", Decimal("2500.5")))
    assert not proof_matches(True, payments, LinkProof(NO, "2025-02", Decimal("2500.50")))  # wrong month
    assert not proof_matches(True, payments, LinkProof(NO, "2025-03", Decimal("2500.51")))  # off by a tiyn
    assert not proof_matches(True, payments, LinkProof(NO, "2025-02", Decimal("1000.00")))  # not the last one
    assert not proof_matches(False, payments, LinkProof(NO, "2025-03", Decimal("2500.50")))  # unknown account
    assert not proof_matches(True, [], LinkProof(NO, "2025-03", Decimal("2500.50")))  # no payment yet


payment_lists = st.lists(
    st.builds(
        lambda i, day, tiyn, rev: pay(
            f"p{i}", date(2024, 1, 1) + timedelta(days=day), f"{Decimal(tiyn) / 100:.2f}", i, reversed_=rev
        ),
        st.integers(1, 10_000),
        st.integers(0, 400),
        st.integers(1, 10_000_000),
        st.booleans(),
    ),
    max_size=8,
    unique_by=lambda p: p.stream_version,
)


@given(payment_lists, st.integers(-5, 5), st.booleans())
@settings(max_examples=300)
def test_only_the_exact_last_payment_proves(
    payments: list[PaymentRecord], tiyn_off: int, month_off: bool
) -> None:
    valid = [p for p in payments if not p.reversed]
    if not valid:
        assert not proof_matches(True, payments, LinkProof(NO, "2024-01", Decimal("1.00")))
        return
    latest = max(valid, key=lambda p: (p.paid_on, p.stream_version))
    month = latest.paid_on.strftime("%Y-%m")
    if month_off:
        month = (latest.paid_on.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    amount = latest.amount + Decimal(tiyn_off) / 100
    assert proof_matches(True, payments, LinkProof(NO, month, amount)) == (tiyn_off == 0 and not month_off)
    assert not proof_matches(False, payments, LinkProof(NO, month, amount))


# --- requests ----------------------------------------------------------------------------------------
def progressed(
    status: str, comment: str = "", request_id: str = "r1", account_no: str = NO
) -> ServiceRequestProgressed:
    return ServiceRequestProgressed.model_validate(
        {"request_id": request_id, "account_no": account_no, "status": status, "comment": comment}
    )


def new_request() -> ServiceRequest:
    request = ServiceRequest.replay(
        [submit("r1", NO, ALICE, "recalculation", "<b>Пересчитайте</b>, пожалуйста")]
    )
    assert request is not None
    return request


def test_the_lifecycle_and_re_sent_statuses() -> None:
    request = new_request()
    assert request.text == "<b>Пересчитайте</b>, пожалуйста"  # as given
    events = decide_progress(request, progressed("in_progress", "взято в работу"))
    assert events == [
        ServiceRequestStatusChanged(
            request_id="r1", account_no=NO, status="in_progress", comment="взято в работу"
        )
    ]
    request = request.apply(events[0])
    assert decide_progress(request, progressed("in_progress", "взято в работу")) == []
    done = decide_progress(request, progressed("resolved", "пересчитано"))
    request = request.apply(done[0])
    assert (request.status, request.comment, request.version) == ("resolved", "пересчитано", 3)
    assert decide_progress(request, progressed("resolved", "пересчитано")) == []
    assert decide_progress(request, progressed("in_progress", "взято в работу")) == []  # an old fact, re-sent


@pytest.mark.parametrize(
    ("history", "status"),
    [
        ([], "resolved"),
        ([], "rejected"),
        (["in_progress", "resolved"], "rejected"),
        (["in_progress", "rejected"], "in_progress"),
        (["in_progress"], "in_progress"),  # the same status with another comment
    ],
)
def test_invalid_transitions_are_rejected(history: list[str], status: str) -> None:
    request = new_request()
    for step in history:
        request = request.apply(ServiceRequestStatusChanged(request_id="r1", account_no=NO, status=step))  # type: ignore[arg-type]
    with pytest.raises(Rejected, match="not allowed"):
        decide_progress(request, progressed(status, "другой комментарий"))


def test_unknown_requests_and_other_accounts_are_rejected() -> None:
    with pytest.raises(Rejected, match="unknown request"):
        decide_progress(None, progressed("in_progress"))
    with pytest.raises(Rejected, match="another account"):
        decide_progress(new_request(), progressed("in_progress", account_no="999999999999"))


def test_the_transition_table_is_a_lifecycle() -> None:
    assert TRANSITIONS["submitted"] == {"in_progress"}
    assert TRANSITIONS["in_progress"] == {"resolved", "rejected"}
    assert not TRANSITIONS["resolved"] and not TRANSITIONS["rejected"]
