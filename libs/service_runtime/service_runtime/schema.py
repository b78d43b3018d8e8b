"""The runtime's own tables, created in every service database by that service's first migration.

- `events`: the event store and the outbox at once. Appends are serialized by an advisory lock held to
  the end of the appending transaction, so `position` order is commit order: readers that continue
  "after position N" never skip a row. `tx_id` records the writing transaction, for diagnosis.
- `outbox_relay_state`: how far the relay has published.
- `consumer_offsets`: per consumer, the next Kafka offset of each partition, written in the same
  transaction as the consumer's read-model changes.
- `consumer_stream_versions`: per consumer, the last applied version of each stream (canonical events).
- `consumer_inbox`: per consumer, the event ids already handled (back-office messages, no stream version).
"""

RUNTIME_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    position        BIGSERIAL PRIMARY KEY,
    tx_id           XID8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id        UUID NOT NULL UNIQUE,
    stream_id       TEXT NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    topic           TEXT NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    correlation_id  TEXT,
    causation_id    TEXT,
    producer        TEXT NOT NULL,
    payload         JSONB NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX IF NOT EXISTS events_tx_order ON events (tx_id, position);

CREATE TABLE IF NOT EXISTS outbox_relay_state (
    relay       TEXT PRIMARY KEY,
    tx_id       XID8 NOT NULL,
    position    BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    consumer    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);

CREATE TABLE IF NOT EXISTS consumer_stream_versions (
    consumer    TEXT NOT NULL,
    stream_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    PRIMARY KEY (consumer, stream_id)
);

CREATE TABLE IF NOT EXISTS consumer_inbox (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE OR REPLACE FUNCTION notify_events_appended() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('events_appended', '');
    RETURN NULL;
END $$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS events_appended ON events;
CREATE TRIGGER events_appended AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_events_appended();
"""

RUNTIME_SCHEMA_DOWN_SQL = """
DROP TRIGGER IF EXISTS events_appended ON events;
DROP FUNCTION IF EXISTS notify_events_appended();
DROP TABLE IF EXISTS consumer_inbox, consumer_stream_versions, consumer_offsets, outbox_relay_state, events;
"""
