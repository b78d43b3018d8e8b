"""Ingest of `backoffice.accounts.v1`: validated messages → the Account aggregate → canonical events.

- The runner already dead-letters what doesn't parse or validate, and drops a redelivered event id
  (its inbox). A re-sent fact under a new event id yields no event (the aggregate's rule).
- Business-invalid messages (`Rejected`) are dead-lettered with the reason (`raise DeadLetter`).
- Changes for an account that isn't opened yet are parked in `parked_messages`; right after the
  account's AccountOpened is appended, they are applied in arrival order, in the same transaction.
  A parked message that is then invalid is dead-lettered by `DeadLetterSender`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson

from accounts.adapters.dead_letters import DeadLetterSender, StoredMessage
from accounts.adapters.streams import append_for_message, load_account
from accounts.domain.account import Account, AccountCommand, decide
from accounts.domain.errors import AccountNotOpened, Rejected
from contracts import backoffice as bo
from contracts.envelope import IngressEnvelope
from contracts.events.accounts import account_stream
from contracts.registry import registry
from service_runtime.consumers import IngressHandler, IngressMessage
from service_runtime.correlation import handling_event
from service_runtime.db import Connection
from service_runtime.dead_letters import DeadLetter
from service_runtime.eventstore import EventStore

log = logging.getLogger(__name__)

_COMMANDS = (bo.AccountOpened, bo.ResidentsChanged, bo.TariffOptionChanged, bo.PayerChanged, bo.MeterReplaced)


def _command(payload: Any) -> AccountCommand:
    if not isinstance(payload, _COMMANDS):
        raise DeadLetter(f"unexpected payload {type(payload).__name__} on {bo.ACCOUNTS}")
    return payload


class AccountIngress(IngressHandler):
    name: ClassVar[str] = "account-ingress"
    topics: ClassVar[tuple[str, ...]] = (bo.ACCOUNTS,)

    def __init__(self, store: EventStore, dead_letters: DeadLetterSender) -> None:
        self._store = store
        self._dead_letters = dead_letters

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        command = _command(message.payload)
        account = await load_account(conn, self._store, command.account_no)
        try:
            events = decide(account, command)
        except AccountNotOpened:
            await _park(conn, command.account_no, message)
            return
        except Rejected as exc:
            raise DeadLetter(exc.reason) from exc
        await append_for_message(
            conn,
            self._store,
            account_stream(command.account_no),
            account.version,
            events,
            message.envelope.event_id,
        )
        if isinstance(command, bo.AccountOpened):
            for event in events:
                account = account.apply(event)
            await self._apply_parked(conn, account)

    async def _apply_parked(self, conn: Connection, account: Account) -> None:
        cur = await conn.execute(
            'SELECT id, event_id, topic, partition, "offset", key, message FROM parked_messages'
            " WHERE account_no = %s ORDER BY id FOR UPDATE",
            (account.account_no,),
        )
        rows = await cur.fetchall()
        if not rows:
            return
        rejected: list[tuple[StoredMessage, str]] = []
        for _id, event_id, topic, partition, offset, key, raw in rows:
            stored = StoredMessage(topic, partition, offset, key, raw.encode())
            envelope = IngressEnvelope.model_validate_json(raw)
            command = _command(
                registry.parse(topic, envelope.event_type, envelope.schema_version, envelope.payload)
            )
            try:
                events = decide(account, command)
            except (Rejected, AccountNotOpened) as exc:
                reason = exc.reason if isinstance(exc, Rejected) else str(exc)
                log.warning(
                    "parked message rejected when applied",
                    extra={"event_id": str(event_id), "account_no": account.account_no, "reason": reason},
                )
                rejected.append((stored, reason))
                continue
            with handling_event(str(event_id), None):
                await append_for_message(
                    conn, self._store, account_stream(account.account_no), account.version, events, event_id
                )
            for event in events:
                account = account.apply(event)
        await conn.execute("DELETE FROM parked_messages WHERE id = ANY(%s)", ([r[0] for r in rows],))
        # Sent before the transaction commits, like the runner's own dead letters: at worst a redone
        # batch sends one twice, never zero times.
        await self._dead_letters.send(rejected)


async def _park(conn: Connection, account_no: str, message: IngressMessage) -> None:
    log.info(
        "message parked until its account is opened",
        extra={"event_id": str(message.envelope.event_id), "account_no": account_no},
    )
    await conn.execute(
        'INSERT INTO parked_messages (account_no, event_id, event_type, topic, partition, "offset", key, message)'
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (
            account_no,
            message.envelope.event_id,
            message.envelope.event_type,
            message.topic,
            message.partition,
            message.offset,
            message.key.encode() if message.key is not None else None,
            orjson.dumps(message.envelope.model_dump(mode="json")).decode(),
        ),
    )
