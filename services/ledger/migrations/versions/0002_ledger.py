"""The ledger's tables: the write side's state beside the event store, the read models, the reference.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UP = """
-- Reference: what the statement prints at the top. Seed data: the contacts are placeholders until the
-- supplier's real ones are entered (UPDATE ledger_services ...); empty fields are not printed.
CREATE TABLE ledger_services (
    service_code      TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    supplier          TEXT NOT NULL,
    supplier_address  TEXT NOT NULL DEFAULT '',
    supplier_phone    TEXT NOT NULL DEFAULT '',
    supplier_email    TEXT NOT NULL DEFAULT '',
    supplier_website  TEXT NOT NULL DEFAULT ''
);
INSERT INTO ledger_services (service_code, name, supplier, supplier_address, supplier_phone, supplier_email,
                             supplier_website)
VALUES ('electricity', 'Электроэнергия', 'АО «АлматыЭнергоСбыт»', 'г. Алматы',
        '+7 (727) 000-00-00', 'info@almatyenergosbyt.kz', 'almatyenergosbyt.kz');

-- Write side (kept in the same transactions as the event store; not projections, never rebuilt).
-- Accounts the ledger has seen opened (accounts' AccountOpened).
CREATE TABLE ledger_accounts (
    account_no       TEXT PRIMARY KEY,
    opened_on        DATE NOT NULL,
    opening_balance  NUMERIC(14, 2) NOT NULL,
    event_id         UUID NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The head of each ledger stream: the row writers lock, its version, the last event and writer.
CREATE TABLE ledger_streams (
    stream_id      TEXT PRIMARY KEY,
    account_no     TEXT NOT NULL,
    service_code   TEXT NOT NULL,
    version        INTEGER NOT NULL,
    last_event_id  UUID,
    last_tx        XID8 NOT NULL DEFAULT pg_current_xact_id(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Where each bank payment id is recorded: one payment per id, and where a cancellation goes.
CREATE TABLE ledger_payment_index (
    payment_id    TEXT PRIMARY KEY,
    account_no    TEXT NOT NULL,
    service_code  TEXT NOT NULL
);
-- Messages that cannot be applied yet: the account is not open, or the cancelled payment is unknown.
CREATE TABLE ledger_parked (
    id                BIGSERIAL PRIMARY KEY,
    event_id          UUID NOT NULL UNIQUE,
    account_no        TEXT NOT NULL,
    waiting_for       TEXT NOT NULL CHECK (waiting_for IN ('account', 'payment')),
    payment_id        TEXT,
    event_type        TEXT NOT NULL,
    source_topic      TEXT NOT NULL,
    source_partition  INTEGER NOT NULL,
    source_offset     BIGINT NOT NULL,
    message_key       BYTEA,
    message           BYTEA NOT NULL,
    parked_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ledger_parked_by_account ON ledger_parked (account_no, id) WHERE waiting_for = 'account';
CREATE INDEX ledger_parked_by_payment ON ledger_parked (payment_id, id) WHERE waiting_for = 'payment';

-- Read models (projections of ledger.events.v1; rebuilt by `python -m ledger.worker rebuild NAME`).
CREATE TABLE ledger_periods (
    account_no       TEXT NOT NULL,
    service_code     TEXT NOT NULL,
    period           TEXT NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    opening_balance  NUMERIC(14, 2) NOT NULL,
    accrued          NUMERIC(14, 2) NOT NULL,
    corrections      NUMERIC(14, 2) NOT NULL,
    paid             NUMERIC(14, 2) NOT NULL,
    closing_balance  NUMERIC(14, 2) NOT NULL,
    tariff           TEXT,
    PRIMARY KEY (account_no, service_code, period),
    CHECK (closing_balance = opening_balance + accrued + corrections - paid)
);
CREATE TABLE ledger_period_streams (
    account_no    TEXT NOT NULL,
    service_code  TEXT NOT NULL,
    version       INTEGER NOT NULL,
    first_period  TEXT NOT NULL,
    last_period   TEXT NOT NULL,
    balance       NUMERIC(14, 2) NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_no, service_code)
);
CREATE TABLE ledger_payments (
    account_no    TEXT NOT NULL,
    service_code  TEXT NOT NULL,
    payment_id    TEXT NOT NULL,
    paid_on       DATE NOT NULL,
    amount        NUMERIC(14, 2) NOT NULL,
    bank          TEXT NOT NULL,
    reversed      BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (account_no, service_code, payment_id)
);
CREATE INDEX ledger_payments_by_date ON ledger_payments (account_no, paid_on);
CREATE TABLE ledger_account_links (
    account_no  TEXT NOT NULL,
    user_id     UUID NOT NULL,
    linked_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account_no, user_id)
);
"""

DOWN = """
DROP TABLE IF EXISTS ledger_account_links, ledger_payments, ledger_period_streams, ledger_periods,
    ledger_parked, ledger_payment_index, ledger_streams, ledger_accounts, ledger_services;
"""


def upgrade() -> None:
    op.execute(UP)


def downgrade() -> None:
    op.execute(DOWN)
