"""The ledger's inputs: back-office messages and upstream canonical events → the ledger's event store.

- `BackofficeIngress` (an IngressHandler, de-duplicated by event id): `backoffice.payments.v1` and
  `backoffice.billing.v1`;
- `UpstreamIngress` (a Projection of other services' canonical events, de-duplicated by their stream
  versions): AccountOpened from `accounts.events.v1`, ChargeCalculated and EstimateReversed from
  `calculator.events.v1`. It is not a read model: it appends to the ledger's store, so it is never
  rebuilt (replaying it would change nothing anyway: every fact is idempotent by its id).

Both hand the message to `application.commands.LedgerCommands`; what it refuses is dead-lettered
with the reason, and what it cannot apply yet is parked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import ValidationError

from contracts import backoffice as bo
from contracts.events import accounts as acc
from contracts.events import calculator as calc
from ledger.adapters.batch_store import BatchLedgerStore
from ledger.adapters.dead_letters import DeadLetterSender
from ledger.adapters.messages import Ignored, command_of, source_of
from ledger.adapters.streams import AggregateCache, PgLedgerStore, StoreConfig
from ledger.application.commands import Command, LedgerCommands, OpenAccount, Rejected, Source
from service_runtime.consumers import CanonicalEvent, IngressHandler, IngressMessage, Projection
from service_runtime.correlation import handling_event
from service_runtime.db import Connection
from service_runtime.dead_letters import DeadLetter

Work = tuple[Command | OpenAccount, Source, str | None]  # a command, its message, its correlation id


async def _execute(commands: LedgerCommands, command: Command | OpenAccount, source: Source) -> None:
    try:
        if isinstance(command, OpenAccount):
            await commands.open_account(command, source)
        else:
            await commands.execute(command, source)
    except Rejected as exc:
        raise DeadLetter(exc.reason) from exc
    except ValidationError as exc:  # a fact the canonical events cannot carry (e.g. a year out of range)
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise DeadLetter(f"cannot be recorded as a ledger event: {errors}") from exc


class _LedgerInput:
    """What both inputs share: the aggregate cache, and running one message or a whole batch."""

    def __init__(self, config: StoreConfig, dead_letters: DeadLetterSender, cache: AggregateCache) -> None:
        self._config = config
        self._dead_letters = dead_letters
        self._cache = cache

    async def _one(self, conn: Connection, work: Work) -> None:
        command, source, correlation_id = work
        commands = LedgerCommands(PgLedgerStore(conn, self._cache, self._config, self._dead_letters))
        with handling_event(str(source.event_id), correlation_id):
            await _execute(commands, command, source)

    async def _batch(self, conn: Connection, work: Sequence[Work]) -> None:
        if not work:
            return
        store = BatchLedgerStore(conn, self._cache, self._config, self._dead_letters)
        await store.preload(command for command, _, _ in work)
        commands = LedgerCommands(store)
        for command, source, correlation_id in work:
            with handling_event(str(source.event_id), correlation_id):
                await _execute(commands, command, source)
        await store.flush()


class BackofficeIngress(_LedgerInput, IngressHandler):
    name: ClassVar[str] = "backoffice-ingress"
    topics: ClassVar[tuple[str, ...]] = (bo.PAYMENTS, bo.BILLING)
    # Every fact is idempotent by its own key, checked by the stream's aggregate (a payment by its bank
    # payment_id, a cancellation by the payment it reverses, a correction by its correction_id) and a
    # parked one by its event id: a message handled twice, under its old event id or a new one, is a
    # duplicate. So the runner's event-id inbox would only repeat that check.
    idempotent_by_content: ClassVar[bool] = True

    def __init__(
        self,
        config: StoreConfig,
        dead_letters: DeadLetterSender,
        *,
        cache: AggregateCache | None = None,
        topics: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(config, dead_letters, cache if cache is not None else AggregateCache(50_000))
        if topics is not None:
            self.topics = topics  # type: ignore[misc]

    @staticmethod
    def _work(message: IngressMessage) -> Work | None:
        try:
            command = command_of(message.payload)
        except Ignored:  # PeriodClosed: the calculator's
            return None
        key = message.key.encode() if message.key is not None else None
        source = source_of(
            message.envelope, topic=message.topic, partition=message.partition, offset=message.offset, key=key
        )
        return command, source, None

    async def handle(self, conn: Connection, message: IngressMessage) -> None:
        work = self._work(message)
        if work is not None:
            await self._one(conn, work)

    async def handle_batch(self, conn: Connection, messages: Sequence[IngressMessage]) -> None:
        """The whole batch at once (the runtime's batch hook); a dead letter makes the runner redo the
        batch message by message through `handle`."""
        await self._batch(conn, [w for w in map(self._work, messages) if w is not None])


class UpstreamIngress(_LedgerInput, Projection):
    name: ClassVar[str] = "upstream-ingress"
    topics: ClassVar[tuple[str, ...]] = (acc.TOPIC, calc.TOPIC)
    handles: ClassVar[frozenset[str]] = frozenset({"AccountOpened", "ChargeCalculated", "EstimateReversed"})

    def __init__(
        self,
        config: StoreConfig,
        dead_letters: DeadLetterSender,
        *,
        cache: AggregateCache | None = None,
        topics: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(config, dead_letters, cache if cache is not None else AggregateCache(50_000))
        if topics is not None:
            self.topics = topics  # type: ignore[misc]

    @staticmethod
    def _work(event: CanonicalEvent) -> Work | None:
        try:
            command = command_of(event.payload)
        except Ignored:
            return None
        envelope = event.envelope
        source = source_of(
            envelope,
            topic=event.topic,
            partition=event.partition,
            offset=event.offset,
            key=envelope.stream_id.encode(),
        )
        return command, source, envelope.correlation_id

    async def apply(self, conn: Connection, event: CanonicalEvent) -> None:
        work = self._work(event)
        if work is not None:
            await self._one(conn, work)

    async def apply_batch(self, conn: Connection, events: Sequence[CanonicalEvent]) -> None:
        await self._batch(conn, [w for w in map(self._work, events) if w is not None])

    async def reset(self, conn: Connection) -> None:
        raise TypeError(
            "upstream-ingress is not a read model: it appends to the ledger's event store and is never rebuilt"
        )
