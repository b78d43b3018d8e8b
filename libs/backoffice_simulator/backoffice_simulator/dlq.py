"""Dead-letter tooling: list the dead letters of `<topic>.dlq` with their reasons, and replay them.

A consumer (service_runtime.consumers) writes a message it cannot apply, unchanged, to `<topic>.dlq`
with headers `dlq.reason`, `dlq.source.topic|partition|offset`, `dlq.consumer`, `dlq.failed_at`. Several
consumers may read one topic (the ledger and the calculator both read `backoffice.billing.v1`), so one
bad message can have several dead letters: they are grouped by their source coordinates.

Replay republishes a dead letter to its source topic, unchanged (`--all`: after a consumer was fixed) or
after a fix (`--fix-with FILE`). Each replay is recorded in `<topic>.dlq.replayed` (key
"partition:offset" of the source), so the same dead letter is never replayed twice, whoever runs it.

Event ids on replay: a message that failed to *parse or validate* was never marked as handled, so it
keeps its event id. A message a handler *rejected* (`DeadLetter(reason)`) was marked as handled in the
consumer's inbox together with the batch (service_runtime/consumers.py `_mark_done` marks every fresh
message, the dead-lettered ones included), so it gets a new event id (uuid5 of its source coordinates,
the same on every attempt), or it would be dropped as a duplicate.

Fix file (JSON):

    {"fixes": [
      {"source": {"partition": 0, "offset": 17}, "merge": {"payload": {"amount": "1250.50"}}},
      {"event_id": "…", "patch": [{"op": "replace", "path": "/payload/account_no", "value": "770100200301"}]},
      {"source": {"partition": 2, "offset": 5}, "replace": {"event_id": "…", "event_type": "…", …}},
      {"source": {"partition": 2, "offset": 9}, "skip": true}
    ]}

`merge` is an RFC 7386 merge patch, `patch` an RFC 6902 JSON patch (add, remove, replace, test),
`replace` the whole message, `skip` records it as handled without republishing it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from backoffice_simulator.kafka import create_topics, producer
from backoffice_simulator.ledger import parse
from backoffice_simulator.wire import dumps, event_id
from contracts.registry import UnknownEventType, registry

PARSE_FAILURE_PREFIXES = (
    "validation failed",
    "malformed message",
    "unknown event type",
    "unsupported schema version",
)
REPLAY_HEADER = "replay.of"


def source_topic(topic: str) -> str:
    return topic.removesuffix(".dlq")


def dlq_topic(topic: str) -> str:
    return f"{source_topic(topic)}.dlq"


def marker_topic(topic: str) -> str:
    return f"{dlq_topic(topic)}.replayed"


@dataclass
class DeadLetterGroup:
    """One bad source message and every dead letter written for it."""

    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value: bytes | None
    reasons: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    failed_at: str = ""
    dlq_offsets: list[tuple[int, int]] = field(default_factory=list)
    replayed: dict[str, Any] | None = None

    @property
    def coordinates(self) -> str:
        return f"{self.source_partition}:{self.source_offset}"

    @property
    def reason(self) -> str:
        return self.reasons[0] if self.reasons else ""

    @property
    def parse_failure(self) -> bool:
        return all(r.startswith(PARSE_FAILURE_PREFIXES) for r in self.reasons) if self.reasons else True

    def document(self) -> dict[str, Any] | None:
        try:
            parsed = json.loads(self.value or b"")
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None

    @property
    def event_type(self) -> str:
        doc = self.document()
        return str(doc.get("event_type", "?")) if doc else "(not JSON)"

    @property
    def event_id(self) -> str | None:
        doc = self.document()
        return str(doc["event_id"]) if doc and "event_id" in doc else None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": {
                "topic": self.source_topic,
                "partition": self.source_partition,
                "offset": self.source_offset,
            },
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "reasons": self.reasons,
            "consumers": self.consumers,
            "failed_at": self.failed_at,
            "dead_letters": len(self.dlq_offsets),
            "replayed": self.replayed,
            "value": (self.value or b"").decode("utf-8", "replace"),
        }


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic from the beginning to its end as of now (no consumer group)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        for tp in tps:
            if tp in pending and await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, recs in batch.items():
                records.extend(r for r in recs if r.offset < ends[tp])
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return records


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}


async def replayed_markers(bootstrap: str, topic: str) -> dict[str, dict[str, Any]]:
    markers: dict[str, dict[str, Any]] = {}
    for record in await read_to_end(bootstrap, marker_topic(topic)):
        if record.key is not None and record.value is not None:
            markers.setdefault(record.key.decode(), json.loads(record.value))
    return markers


async def list_dead_letters(bootstrap: str, topic: str) -> list[DeadLetterGroup]:
    """The dead letters of one topic, grouped by their source message, in source order."""
    groups: dict[tuple[str, int, int], DeadLetterGroup] = {}
    for record in await read_to_end(bootstrap, dlq_topic(topic)):
        h = _headers(record)
        src = (
            h.get("dlq.source.topic", source_topic(topic)),
            int(h.get("dlq.source.partition", "-1")),
            int(h.get("dlq.source.offset", str(-1 - record.offset))),
        )
        group = groups.get(src)
        if group is None:
            group = groups[src] = DeadLetterGroup(*src, key=record.key, value=record.value)
            group.failed_at = h.get("dlq.failed_at", "")
        reason = h.get("dlq.reason", "")
        if reason and reason not in group.reasons:
            group.reasons.append(reason)
        consumer = h.get("dlq.consumer", "")
        if consumer and consumer not in group.consumers:
            group.consumers.append(consumer)
        group.dlq_offsets.append((record.partition, record.offset))
    markers = await replayed_markers(bootstrap, topic) if groups else {}
    for group in groups.values():
        group.replayed = markers.get(group.coordinates)
    return sorted(groups.values(), key=lambda g: (g.source_topic, g.source_partition, g.source_offset))


async def dead_letter_topics(bootstrap: str) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = await consumer.topics()
    finally:
        await consumer.stop()
    return sorted(t for t in topics if t.endswith(".dlq"))


# --- fixes ----------------------------------------------------------------------------------------
class FixError(ValueError):
    pass


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(document: Any, operations: Sequence[dict[str, Any]]) -> Any:
    """RFC 6902: add, remove, replace, test (enough for fixing a message)."""
    doc = copy.deepcopy(document)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op["value"])
                continue
            raise FixError(f"unsupported patch at the root: {op}")
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise FixError(f"test failed at {path}: {current!r} != {op.get('value')!r}")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise FixError(f"nothing to replace at {path}")
                parent[last] = op["value"]
        else:
            raise FixError(f"unsupported patch operation {kind!r}")
    return doc


@dataclass(frozen=True, slots=True)
class Fix:
    partition: int | None
    offset: int | None
    event_id: str | None
    merge: Any = None
    patch: Sequence[dict[str, Any]] | None = None
    replace: Any = None
    skip: bool = False

    def matches(self, group: DeadLetterGroup) -> bool:
        if self.partition is not None and self.offset is not None:
            return (group.source_partition, group.source_offset) == (self.partition, self.offset)
        return self.event_id is not None and group.event_id == self.event_id

    def apply(self, group: DeadLetterGroup) -> bytes:
        if self.replace is not None:
            return dumps(self.replace)
        document = group.document()
        if document is None:
            raise FixError(f"{group.coordinates} is not JSON: only a `replace` fix can repair it")
        if self.merge is not None:
            document = merge_patch(document, self.merge)
        if self.patch is not None:
            document = json_patch(document, self.patch)
        return dumps(document)


def load_fixes(path: Path) -> list[Fix]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = raw.get("fixes", raw) if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise FixError('a fix file is {"fixes": [...]} or a list of fixes')
    fixes = []
    for item in items:
        source = item.get("source") or {}
        fixes.append(
            Fix(
                partition=source.get("partition"),
                offset=source.get("offset"),
                event_id=item.get("event_id"),
                merge=item.get("merge"),
                patch=item.get("patch"),
                replace=item.get("replace"),
                skip=bool(item.get("skip", False)),
            )
        )
    return fixes


# --- replay ---------------------------------------------------------------------------------------
@dataclass
class ReplayOutcome:
    group: DeadLetterGroup
    action: str  # replayed | fixed | skipped | already | invalid | unmatched
    detail: str = ""
    event_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.group.coordinates,
            "action": self.action,
            "detail": self.detail,
            "event_id": self.event_id,
        }


def still_invalid(topic: str, value: bytes) -> str | None:
    """Why a (fixed) message would be dead-lettered again, for topics the contracts know; None if fine."""
    try:
        document = json.loads(value)
        if not isinstance(document, dict):
            return "not a JSON object"
        registry.spec(topic, str(document.get("event_type")))
    except UnknownEventType:
        if any(spec.topic == topic for spec in registry.specs()):
            return "unknown event type"
        return None  # a topic outside the contracts: nothing to check against
    except ValueError:
        return "not JSON"
    return None if parse(topic, value) is not None else "does not validate against the contracts"


async def replay(
    bootstrap: str,
    topic: str,
    *,
    fixes: Sequence[Fix] | None = None,
    replay_all: bool = False,
    dry_run: bool = False,
    force: bool = False,
    validate_as: str | None = None,
) -> list[ReplayOutcome]:
    """Replay the dead letters of `topic` (see the module doc). `validate_as`: check the fixed messages
    against another topic's contracts (default: the source topic's)."""
    if not replay_all and fixes is None:
        raise FixError("choose --all (republish unchanged) or --fix-with FILE")
    source = source_topic(topic)
    groups = [g for g in await list_dead_letters(bootstrap, source) if g.source_topic == source]
    outcomes: list[ReplayOutcome] = []
    planned: list[tuple[DeadLetterGroup, bytes | None, str, str | None]] = []
    for group in groups:
        fix = next((f for f in fixes or () if f.matches(group)), None)
        if group.replayed is not None:
            outcomes.append(
                ReplayOutcome(group, "already", f"replayed at {group.replayed.get('replayed_at')}")
            )
            continue
        if fix is None and not replay_all:
            continue
        if fix is not None and fix.skip:
            planned.append((group, None, "skipped", None))
            continue
        try:
            value = fix.apply(group) if fix is not None else (group.value or b"")
        except (FixError, KeyError, IndexError, ValueError) as exc:
            outcomes.append(ReplayOutcome(group, "invalid", f"fix failed: {exc}"))
            continue
        problem = still_invalid(validate_as or source, value)
        if problem and not force:
            outcomes.append(
                ReplayOutcome(group, "invalid", f"not replayed: {problem} (use --force to send it)")
            )
            continue
        value, new_id = _with_replay_event_id(group, value)
        planned.append((group, value, "fixed" if fix is not None else "replayed", new_id))
    for fix in fixes or ():
        if not any(fix.matches(g) for g in groups):
            where = f"{fix.partition}:{fix.offset}" if fix.offset is not None else f"event {fix.event_id}"
            outcomes.append(
                ReplayOutcome(
                    DeadLetterGroup(source, -1, -1, None, None), "unmatched", f"no dead letter at {where}"
                )
            )
    if dry_run or not planned:
        outcomes += [ReplayOutcome(g, a, "dry run" if dry_run else "", e) for g, _, a, e in planned]
        return outcomes
    await create_topics(bootstrap, [(marker_topic(source), 1, -1)])
    client = producer(bootstrap, client_id="backoffice-sim-dlq-replay")
    await client.start()
    try:
        for group, republished, action, new_id in planned:
            new_offset = None
            if republished is not None:
                meta = await client.send_and_wait(
                    source,
                    value=republished,
                    key=group.key,
                    headers=[(REPLAY_HEADER, f"{source}:{group.coordinates}".encode())],
                )
                new_offset = f"{meta.partition}:{meta.offset}"
            marker = {
                "source": {
                    "topic": source,
                    "partition": group.source_partition,
                    "offset": group.source_offset,
                },
                "action": action,
                "event_id": new_id,
                "republished_at": new_offset,
                "replayed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            await client.send_and_wait(
                marker_topic(source), value=dumps(marker), key=group.coordinates.encode()
            )
            outcomes.append(ReplayOutcome(group, action, f"→ {new_offset}" if new_offset else "", new_id))
    finally:
        await client.stop()
    return outcomes


def _with_replay_event_id(group: DeadLetterGroup, value: bytes) -> tuple[bytes, str | None]:
    """A handler-rejected message needs a new event id (its old one is in the consumer's inbox)."""
    try:
        document = json.loads(value)
    except ValueError:
        return value, None
    if not isinstance(document, dict):
        return value, None
    original = group.event_id
    if group.parse_failure or document.get("event_id") != original:
        return value, str(document.get("event_id")) if "event_id" in document else None
    new_id = str(event_id(f"replay:{group.source_topic}:{group.coordinates}"))
    document["event_id"] = new_id
    return dumps(document), new_id
