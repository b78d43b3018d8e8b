"""The account register's read models, the links, customer requests, payment proofs, parked messages.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Projection "accounts": one row per account, the current attributes and meter.
        CREATE TABLE accounts (
            account_no               TEXT PRIMARY KEY,
            payer_name               TEXT NOT NULL,
            payer_effective_from     DATE NOT NULL,
            address                  TEXT NOT NULL,
            residents                INTEGER NOT NULL,
            residents_effective_from DATE NOT NULL,
            electric_stove           BOOLEAN NOT NULL,
            living_alone             BOOLEAN NOT NULL,
            tariff_option            TEXT NOT NULL,
            tariff_effective_from    DATE NOT NULL,
            district_office_code     TEXT NOT NULL,
            opened_on                DATE NOT NULL,
            opening_balance          NUMERIC(16, 2) NOT NULL,
            meter_serial             TEXT,
            meter_digits             INTEGER,
            meter_installed_on       DATE,
            meter_replaced_on        DATE,
            version                  INTEGER NOT NULL,
            updated_at               TIMESTAMPTZ NOT NULL
        );

        -- Projection "meter-history": every meter the account had, with its readings at each change.
        CREATE TABLE meter_history (
            account_no        TEXT NOT NULL,
            installed_version INTEGER NOT NULL,   -- the MeterInstalled event's version in account:{no}
            serial            TEXT NOT NULL,
            digits            INTEGER NOT NULL,
            installed_on      DATE NOT NULL,
            initial_reading   NUMERIC(14, 2) NOT NULL,
            removed_on        DATE,
            final_reading     NUMERIC(14, 2),
            PRIMARY KEY (account_no, installed_version)
        );

        -- Projection "account-links" (also written by the API in the appending transaction, see README).
        -- `version` is the stream version of account-links:{no} of the last event applied to the row.
        CREATE TABLE account_links (
            account_no  TEXT NOT NULL,
            user_id     UUID NOT NULL,
            linked      BOOLEAN NOT NULL,
            version     INTEGER NOT NULL,
            changed_at  TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (account_no, user_id)
        );
        CREATE INDEX account_links_by_user ON account_links (user_id, account_no) WHERE linked;

        -- Projection "service-requests" (the API writes the submitted row too, same rule as the links).
        CREATE TABLE service_requests (
            request_id   TEXT PRIMARY KEY,
            account_no   TEXT NOT NULL,
            user_id      UUID NOT NULL,
            category     TEXT NOT NULL,
            text         TEXT NOT NULL,
            status       TEXT NOT NULL,
            comment      TEXT NOT NULL,
            submitted_at TIMESTAMPTZ NOT NULL,
            updated_at   TIMESTAMPTZ NOT NULL,
            version      INTEGER NOT NULL
        );
        CREATE INDEX service_requests_by_account_user ON service_requests (account_no, user_id, submitted_at);

        -- Projection "payment-proofs" of ledger.events.v1: the payments an ownership proof is checked against.
        CREATE TABLE proof_payments (
            stream_id      TEXT NOT NULL,
            payment_id     TEXT NOT NULL,
            account_no     TEXT NOT NULL,
            stream_version INTEGER NOT NULL,
            paid_on        DATE,              -- NULL only for a reversal seen without its payment
            amount         NUMERIC(16, 2),
            reversed       BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (stream_id, payment_id)
        );
        CREATE INDEX proof_payments_by_account ON proof_payments (account_no);

        -- Back-office account changes that arrived before their AccountOpened, applied right after it.
        CREATE TABLE parked_messages (
            id          BIGSERIAL PRIMARY KEY,
            account_no  TEXT NOT NULL,
            event_id    UUID NOT NULL UNIQUE,
            event_type  TEXT NOT NULL,
            topic       TEXT NOT NULL,
            partition   INTEGER NOT NULL,
            "offset"    BIGINT NOT NULL,
            key         BYTEA,
            message     TEXT NOT NULL,      -- the ingress envelope (JSON) as parsed from the record
            parked_at   TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        CREATE INDEX parked_messages_by_account ON parked_messages (account_no, id);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE parked_messages, proof_payments, service_requests, account_links, meter_history, accounts"
    )
