"""Calculator read models: tariff catalog, accounts (from accounts' events), readings, charges, billing runs.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The tariff catalog (stream `tariff-catalog`), written in the append's transaction.
        CREATE TABLE tariff_rows (
            effective_from  DATE PRIMARY KEY,
            flat            NUMERIC(16, 4) NOT NULL,
            tier1           NUMERIC(16, 4) NOT NULL,
            tier2           NUMERIC(16, 4) NOT NULL,
            tier3           NUMERIC(16, 4) NOT NULL,
            norms           JSONB NOT NULL,
            event_id        UUID NOT NULL
        );
        CREATE TABLE vat_rates (
            effective_from  DATE PRIMARY KEY,
            rate            NUMERIC(8, 4) NOT NULL,
            event_id        UUID NOT NULL
        );

        -- Accounts' attributes (projection of accounts.events.v1).
        CREATE TABLE accounts (
            account_no      TEXT PRIMARY KEY,
            opened_on       DATE NOT NULL,
            registered_at   TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE account_attributes (
            account_no      TEXT NOT NULL,
            attribute       TEXT NOT NULL,  -- residents | tariff_option | electric_stove | living_alone
            effective_from  DATE NOT NULL,
            stream_version  INTEGER NOT NULL,
            value           JSONB NOT NULL,
            PRIMARY KEY (account_no, attribute, effective_from, stream_version)
        );
        CREATE TABLE meters (
            account_no      TEXT NOT NULL,
            serial          TEXT NOT NULL,
            digits          INTEGER NOT NULL,
            installed_on    DATE NOT NULL,
            initial_reading NUMERIC(14, 2) NOT NULL,
            removed_on      DATE,
            final_reading   NUMERIC(14, 2),
            PRIMARY KEY (account_no, serial)
        );
        CREATE TABLE account_links (
            account_no      TEXT NOT NULL,
            user_id         UUID NOT NULL,
            PRIMARY KEY (account_no, user_id)
        );

        -- Accepted readings (stream `meter-readings:{no}`), written in the append's transaction.
        CREATE TABLE readings (
            reading_id      TEXT PRIMARY KEY,
            account_no      TEXT NOT NULL,
            meter_serial    TEXT NOT NULL,
            reading_date    DATE NOT NULL,
            value           NUMERIC(14, 2) NOT NULL,
            source          TEXT NOT NULL,
            consumption_kwh NUMERIC(14, 2),  -- NULL only while a rebuild waits for the reading's charge
            confirmed_implausible BOOLEAN NOT NULL,
            event_id        UUID NOT NULL UNIQUE,
            stream_version  INTEGER NOT NULL,
            recorded_at     TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX readings_by_account ON readings (account_no, reading_date);

        -- Grid readings that arrived before their account or meter: applied when it arrives.
        CREATE TABLE parked_grid_readings (
            event_id        UUID PRIMARY KEY,
            account_no      TEXT NOT NULL,
            payload         JSONB NOT NULL,
            parked_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            outcome         TEXT,          -- NULL while parked; 'accepted' or the rejection reason
            resolved_at     TIMESTAMPTZ
        );
        CREATE INDEX parked_grid_readings_open ON parked_grid_readings (account_no) WHERE outcome IS NULL;

        -- Charges, reversals and completed periods (streams `meter-readings:{no}`, `billing-period:{no}:{period}`).
        CREATE TABLE charges (
            charge_id       TEXT PRIMARY KEY,
            account_no      TEXT NOT NULL,
            period          TEXT NOT NULL,
            estimated       BOOLEAN NOT NULL,
            reading_id      TEXT UNIQUE,
            from_date       DATE NOT NULL,
            to_date         DATE NOT NULL,
            days            INTEGER NOT NULL,
            consumption_kwh NUMERIC(14, 2) NOT NULL,
            tariff_option_applied TEXT NOT NULL,
            net_total       NUMERIC(16, 2) NOT NULL,
            vat             NUMERIC(16, 2) NOT NULL,
            total           NUMERIC(16, 2) NOT NULL,
            reversed_by     TEXT,
            event_id        UUID NOT NULL UNIQUE
        );
        CREATE INDEX charges_by_account ON charges (account_no, period);
        CREATE INDEX charges_open_estimates ON charges (account_no)
            WHERE estimated AND reversed_by IS NULL;
        CREATE TABLE estimate_reversals (
            correction_id   TEXT PRIMARY KEY,
            account_no      TEXT NOT NULL,
            period          TEXT NOT NULL,
            amount          NUMERIC(16, 2) NOT NULL,
            reading_id      TEXT NOT NULL,
            reversed_charge_ids TEXT[] NOT NULL
        );
        CREATE TABLE period_billing (
            account_no      TEXT NOT NULL,
            period          TEXT NOT NULL,
            status          TEXT NOT NULL,  -- pending (waiting for a reading's charge) | billed
            charge_ids      TEXT[] NOT NULL DEFAULT '{}',
            updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (account_no, period)
        );
        CREATE TABLE rating_failures (
            reading_id      TEXT PRIMARY KEY,
            account_no      TEXT NOT NULL,
            code            TEXT NOT NULL,
            detail          TEXT NOT NULL,
            failed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
        );

        -- The monthly billing run: one row per closed period, one work item per account.
        CREATE TABLE billing_runs (
            period          TEXT PRIMARY KEY,
            closed_at       TIMESTAMPTZ NOT NULL,  -- the latest PeriodClosed's occurred_at
            requested_at    TIMESTAMPTZ NOT NULL,
            populated_at    TIMESTAMPTZ,
            completed_at    TIMESTAMPTZ,
            accounts_total  INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE billing_run_items (
            period          TEXT NOT NULL,
            account_no      TEXT NOT NULL,
            done            BOOLEAN NOT NULL DEFAULT false,
            PRIMARY KEY (period, account_no)
        );
        CREATE INDEX billing_run_items_todo ON billing_run_items (period, account_no) WHERE NOT done;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE billing_run_items, billing_runs, rating_failures, period_billing, estimate_reversals,
            charges, parked_grid_readings, readings, account_links, meters, account_attributes, accounts,
            vat_rates, tariff_rows;
        """
    )
