"""Settings of the ledger service: LEDGER_* variables plus the shared ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from contracts.events.ledger import TOPIC
from service_runtime.settings import ServiceSettings

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


class LedgerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", env_parse_none_str="null")

    service_name: str = "ledger"
    # Bigger batches than the runtime's default (500): the ledger's consumers write a batch with a few
    # statements, so per-batch costs dominate. 1,000 with two consumers per input (`ingress_consumers`):
    # two batches in flight, and the worker's peak memory stays well under 200 MB (2 × 2,000: ~195 MB).
    consumer_batch_size: int = 1000
    # Where the ledger's canonical events are published (the contract's topic; benchmarks use their own).
    events_topic: str = TOPIC
    # Aggregates kept in memory by the worker's inputs, shared by all of them (an LRU weighed by events,
    # ~0.25 KB each with their repeated values shared, see domain/shared.py): it bounds the worker's
    # memory (full, ≈20 MB); a miss costs reading the stream from the event store (≈10 µs of the worker's
    # CPU and ≈5 µs of PostgreSQL's per event, measured by bench_ledger).
    aggregate_cache_events: int = 80_000
    # The ledger's read models (periods, payments) are written by the inputs in the transaction that
    # appends the events (an inline projection). False: by a `ledger-read-models` consumer of
    # `events_topic` instead (the previous design; slower, and the read models lag the store).
    inline_read_models: bool = True
    # Consumers of each input (back-office ingress, upstream ingress) in this worker process, members of
    # one consumer group (the partitions are shared out): while one decides a batch (Python), another's
    # writes run in PostgreSQL. Appends stay serialized by the events table's append lock.
    ingress_consumers: int = Field(default=2, ge=1, le=8)
    # Which consumers this worker process runs (comma-separated names; empty: all of them; `none`: no
    # consumer, e.g. a process that only relays). The relay runs where `worker_relay` is true.
    worker_handlers: str = ""
    worker_relay: bool = True
    # The worker's garbage collector thresholds (service_runtime.worker.tune_gc; null: Python's
    # defaults). With the defaults the worker spent about 40 % of its CPU in the collector, walking the
    # cached aggregates again and again.
    gc_thresholds: tuple[int, int, int] | None = (50_000, 20, 10)
    # `python -m ledger.worker parked` flags parked messages older than this.
    parked_stale_after_days: int = 7
