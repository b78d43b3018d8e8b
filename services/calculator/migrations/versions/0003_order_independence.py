"""Order independence: billing-run membership of late accounts, charge adjustments, reconcile requests.

- `accounts.billing_synced`: false until the billing-run loop has added the account to every billing run
  of a period it was active in (an account that becomes known after a run was populated, or completed).
- `charges.adjusted` and `charge_adjustments`: corrections of a posted charge to what it must be from the
  facts known now (a late attribute, meter or tariff change; a late earlier reading behind an estimate).
- `reconcile_requests`: accounts whose charges must be checked against the facts (the trigger bumps
  `version`; the reconciler removes the row only if nobody bumped it meanwhile).

Existing accounts start unsynced and with a reconcile request, so a running stack is repaired once.

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
        ALTER TABLE accounts ADD COLUMN billing_synced BOOLEAN NOT NULL DEFAULT false;
        CREATE INDEX accounts_billing_unsynced ON accounts (account_no) WHERE NOT billing_synced;

        ALTER TABLE charges ADD COLUMN adjusted NUMERIC(16, 2) NOT NULL DEFAULT 0;
        ALTER TABLE charges ADD COLUMN adjustments INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE charge_adjustments (
            correction_id   TEXT PRIMARY KEY,
            charge_id       TEXT NOT NULL,
            account_no      TEXT NOT NULL,
            period          TEXT NOT NULL,
            amount          NUMERIC(16, 2) NOT NULL
        );
        CREATE INDEX charge_adjustments_by_account ON charge_adjustments (account_no);

        CREATE TABLE reconcile_requests (
            account_no      TEXT PRIMARY KEY,
            version         BIGINT NOT NULL DEFAULT 1,
            requested_at    TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        INSERT INTO reconcile_requests (account_no) SELECT DISTINCT account_no FROM charges;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE reconcile_requests, charge_adjustments;
        ALTER TABLE charges DROP COLUMN adjustments, DROP COLUMN adjusted;
        DROP INDEX accounts_billing_unsynced;
        ALTER TABLE accounts DROP COLUMN billing_synced;
        """
    )
