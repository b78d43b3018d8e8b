"""Customer requests (заявки): submitted by the customer, moved along by the back-office."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from contracts import backoffice as bo
from contracts.envelope import Envelope
from tests.support.stack import eventually

TEXT = '<script>alert("x")</script> Прошу сделать перерасчёт за март: показания 4821 & 4900'


async def test_the_request_lifecycle(accounts: Any) -> None:
    alice = uuid.uuid4()
    no = await accounts.open_paid_and_linked(alice)
    auth = accounts.auth(alice)
    path = f"/internal/v1/accounts/{no}/requests"

    created = await accounts.api.post(path, json={"category": "recalculation", "text": TEXT}, headers=auth)
    assert created.status_code == 201
    request_id = created.json()["request_id"]
    assert created.json() == {"request_id": request_id, "status": "submitted"}
    (listed,) = (await accounts.api.get(path, headers=auth)).json()
    assert (
        listed["request_id"],
        listed["category"],
        listed["text"],
        listed["status"],
        listed["comment"],
    ) == (
        request_id,
        "recalculation",
        TEXT,  # stored and returned as given
        "submitted",
        "",
    )

    # Published for the back-office on accounts.events.v1, keyed by its stream.
    stream = f"service-request:{request_id}"
    records = await accounts.read_topic_since_start(
        "accounts.events.v1", lambda rs: any(r.key == stream.encode() for r in rs)
    )
    (published,) = [Envelope.model_validate_json(r.value) for r in records if r.key == stream.encode()]
    assert published.event_type == "ServiceRequestSubmitted"
    assert published.payload == {
        "request_id": request_id,
        "account_no": no,
        "user_id": str(alice),
        "category": "recalculation",
        "text": TEXT,
    }

    # Validation.
    for body in (
        {"category": "complaint", "text": "x"},
        {"category": "other", "text": ""},
        {"category": "other", "text": "   "},
        {"category": "other", "text": "я" * 4001},
    ):
        response = await accounts.api.post(path, json=body, headers=auth)
        assert response.status_code == 422 and response.json()["code"] == "validation_error", body
    assert (
        await accounts.api.post(path, json={"category": "other", "text": "я" * 4000}, headers=auth)
    ).status_code == 201

    # An Idempotency-Key makes a retried submission the same request.
    key = {**auth, "Idempotency-Key": uuid.uuid4().hex}
    first = await accounts.api.post(path, json={"category": "connection", "text": "Подключение"}, headers=key)
    again = await accounts.api.post(path, json={"category": "connection", "text": "Подключение"}, headers=key)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    other = await accounts.api.post(path, json={"category": "other", "text": "Другое"}, headers=key)
    assert other.status_code == 409

    # The back-office moves it: in progress (re-sent with a new id: nothing new), then resolved.
    def progressed(status: str, comment: str, request: str = request_id) -> tuple[uuid.UUID, bytes]:
        message: tuple[uuid.UUID, bytes] = accounts.message(
            "ServiceRequestProgressed",
            {"request_id": request, "account_no": no, "status": status, "comment": comment},
        )
        return message

    taken_id, taken = progressed("in_progress", "Передано в РОЭС")
    _, taken_again = progressed("in_progress", "Передано в РОЭС")
    resolved_id, resolved = progressed("resolved", "Перерасчёт выполнен")
    await accounts.send(bo.REQUESTS, no, taken, taken, taken_again, resolved)
    await accounts.wait_handled("request-ingress", taken_id, resolved_id)
    events = await accounts.events(stream)
    assert [(t, p.get("status"), p.get("comment")) for _, t, p in events] == [
        ("ServiceRequestSubmitted", None, None),
        ("ServiceRequestStatusChanged", "in_progress", "Передано в РОЭС"),
        ("ServiceRequestStatusChanged", "resolved", "Перерасчёт выполнен"),
    ]
    assert events[1][0] == taken_id and events[2][0] == resolved_id

    async def shows_resolved() -> bool:
        items = (await accounts.api.get(path, headers=auth)).json()
        mine = next(i for i in items if i["request_id"] == request_id)
        return (mine["status"], mine["comment"]) == ("resolved", "Перерасчёт выполнен")

    await eventually(shows_resolved)

    # Invalid transitions and unknown requests are dead-lettered; the request stays resolved.
    _, back = progressed("in_progress", "снова в работе")
    _, rejected_after = progressed("rejected", "отклонено")
    _, unknown = progressed("in_progress", "", request=str(uuid.uuid4()))
    _, malformed = accounts.message("ServiceRequestProgressed", {"request_id": request_id, "status": "done"})
    await accounts.send(bo.REQUESTS, no, back, rejected_after, unknown, malformed)
    reasons = await accounts.dead_letters(bo.REQUESTS, no, 4)
    assert len(reasons) == 4
    assert sum("resolved → in_progress is not allowed" in r for r in reasons) == 1
    assert sum("resolved → rejected is not allowed" in r for r in reasons) == 1
    assert sum("unknown request" in r for r in reasons) == 1
    assert sum("validation failed" in r for r in reasons) == 1
    assert len(await accounts.events(stream)) == 3

    # The dead letter is the message unchanged.
    def ours(records: list[Any]) -> list[Any]:
        return [r for r in records if r.key == no.encode() and accounts.is_ours(r)]

    records = await accounts.read_topic_since_start(f"{bo.REQUESTS}.dlq", lambda rs: len(ours(rs)) >= 4)
    assert {r.value for r in ours(records)} == {back, rejected_after, unknown, malformed}
    assert orjson.loads(back)["payload"]["status"] == "in_progress"
